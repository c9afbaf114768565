# grad.cmake - autodiff checked against finite differences (every model in
# grad/), and against PyTorch in float64 where python3-torch is installed.
add_executable(nnd_gradcheck ${CMAKE_CURRENT_SOURCE_DIR}/gradcheck.c)
target_link_libraries(nnd_gradcheck PRIVATE nndcore)
set_target_properties(nnd_gradcheck PROPERTIES ENABLE_EXPORTS ON)
target_link_options(nnd_gradcheck PRIVATE -Wl,--whole-archive $<TARGET_FILE:nndrt> -Wl,--no-whole-archive)

find_program(NND_SYSTEM_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
file(GLOB _grad CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/grad/*.nnd)
foreach(f ${_grad})
  get_filename_component(n ${f} NAME_WE)
  add_test(NAME grad_fd_${n} COMMAND nnd_gradcheck ${n}.nnd
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/grad)
  set_tests_properties(grad_fd_${n} PROPERTIES LABELS grad)
  if(NND_SYSTEM_PYTHON)
    add_test(NAME grad_torch_${n}
      COMMAND ${CMAKE_COMMAND} -E env PYTHON=${NND_SYSTEM_PYTHON}
        sh ${CMAKE_CURRENT_SOURCE_DIR}/grad/torch_check.sh $<TARGET_FILE:nnd_gradcheck> ${n}.nnd
        ${CMAKE_CURRENT_BINARY_DIR}/grad_${n}.dump
      WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/grad)
    set_tests_properties(grad_torch_${n} PROPERTIES LABELS grad SKIP_RETURN_CODE 77)
  endif()
endforeach()
