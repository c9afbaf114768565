# codegen: the LLVM backend's kernels, JIT, object emission and linking.
# nnd_cg_test builds small graphs by hand, JITs them and compares every
# result bit for bit with C references (tests/codegen/cg_test.c).  Like
# nndc, it exports its symbols and carries the whole runtime so that the
# JIT resolves nnd_rt_* to this process's copies.
add_executable(nnd_cg_test ${CMAKE_CURRENT_SOURCE_DIR}/codegen/cg_test.c)
target_link_libraries(nnd_cg_test PRIVATE nndcore)
set_target_properties(nnd_cg_test PROPERTIES ENABLE_EXPORTS ON)
target_link_options(nnd_cg_test PRIVATE -Wl,--whole-archive $<TARGET_FILE:nndrt> -Wl,--no-whole-archive)
file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/codegen)
add_test(NAME codegen_kernels
         COMMAND nnd_cg_test --aot-dir ${CMAKE_CURRENT_BINARY_DIR}/codegen)
# the whole kernel grid (thousands of JIT'd products, ~5 minutes under the
# sanitizers) runs in the plain build; the sanitizer pass of scripts/test.sh
# leaves out "slow" and runs the vector-width subsets below through the
# same code generator instead
set_tests_properties(codegen_kernels PROPERTIES LABELS "codegen;slow")
# the same kernels with the narrower vector widths of AVX2 and SSE hosts
# (NND_MM_VW: lanes of the matmul and dropout vectors; results never change)
foreach(vw 8 4)
  add_test(NAME codegen_kernels_vw${vw}
           COMMAND nnd_cg_test --vw-subset)
  set_tests_properties(codegen_kernels_vw${vw} PROPERTIES ENVIRONMENT NND_MM_VW=${vw})
endforeach()
