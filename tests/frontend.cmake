# frontend.cmake - parser and diagnostics golden tests (included from
# tests/CMakeLists.txt).  Each golden file is its own test case.
#   parse/ok/X.nnd  : AST dump must equal X.expected, no diagnostics
#   parse/err/X.nnd : stderr must equal X.expected exactly, exit status 1
# The tests run inside the golden directory with bare file names so the
# paths in dumps and diagnostics do not depend on where the tree lives.
# To refresh an expectation after an intended change:
#   cd tests/parse/ok && nnd_parse_dump X.nnd > X.expected

add_executable(nnd_parse_dump ${CMAKE_CURRENT_SOURCE_DIR}/parse_dump.c)
target_link_libraries(nnd_parse_dump PRIVATE nndcore)

set(_fe_dir ${CMAKE_CURRENT_SOURCE_DIR}/parse)
set(_fe_out ${CMAKE_CURRENT_BINARY_DIR}/parse_actual)
file(MAKE_DIRECTORY ${_fe_out})

function(nnd_parse_golden name mode dir inputs expected)
  add_test(NAME ${name}
    COMMAND ${CMAKE_COMMAND} -DPROG=$<TARGET_FILE:nnd_parse_dump>
      -DINPUTS=${inputs} -DEXPECTED=${expected} -DMODE=${mode}
      -DACTUAL=${_fe_out}/${name}.actual
      -P ${_fe_dir}/golden.cmake
    WORKING_DIRECTORY ${dir})
  set_tests_properties(${name} PROPERTIES LABELS frontend)
endfunction()

file(GLOB _fe_ok CONFIGURE_DEPENDS ${_fe_dir}/ok/*.nnd)
foreach(f ${_fe_ok})
  get_filename_component(n ${f} NAME_WE)
  nnd_parse_golden(parse_ok_${n} ok ${_fe_dir}/ok ${n}.nnd ${n}.expected)
endforeach()

file(GLOB _fe_err CONFIGURE_DEPENDS ${_fe_dir}/err/*.nnd)
foreach(f ${_fe_err})
  get_filename_component(n ${f} NAME_WE)
  nnd_parse_golden(parse_err_${n} err ${_fe_dir}/err ${n}.nnd ${n}.expected)
endforeach()

# One process, several files: the lexer and parser must start clean each time.
nnd_parse_golden(parse_ok_several_files ok ${_fe_dir}/ok
  "mlp_fashion.nnd,features.nnd,cnn_fashion.nnd"
  "mlp_fashion.expected,features.expected,cnn_fashion.expected")
# An error in one file must not leak into the next one's parse.
nnd_parse_golden(parse_err_then_ok err ${_fe_dir}/err
  "two_errors.nnd,../ok/minimal.nnd" "two_errors.expected")
nnd_parse_golden(parse_err_no_such_file err ${_fe_dir}/err
  "no_such_file.nnd" "no_such_file.stderr")

# common.c on its own: arena, read_file, diagnostics at odd positions.
add_executable(nnd_frontend_diag ${CMAKE_CURRENT_SOURCE_DIR}/frontend_diag.c)
target_link_libraries(nnd_frontend_diag PRIVATE nndcore)
add_test(NAME frontend_diag_positions
  COMMAND ${CMAKE_COMMAND} -DPROG=$<TARGET_FILE:nnd_frontend_diag>
    -DINPUTS= -DEXPECTED=diag_positions.stderr -DMODE=err
    -DACTUAL=${_fe_out}/frontend_diag_positions.actual
    -P ${_fe_dir}/golden.cmake
  WORKING_DIRECTORY ${_fe_dir}/err)
set_tests_properties(frontend_diag_positions PROPERTIES LABELS frontend)
