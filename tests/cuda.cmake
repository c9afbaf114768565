# cuda.cmake - the CUDA backend (docs/cuda.md).  Without a GPU: NVRTC
# compiles every kernel and the PTX is scanned; the host emulation of the
# device layer gives the CPU's bits.  With a GPU: CPU == GPU, GPU == GPU.
# Tests exit 77 (skipped) when NVRTC, a C++ compiler, the data or a GPU is
# missing.
add_executable(nnd_cuda_compile_test ${CMAKE_CURRENT_SOURCE_DIR}/cuda/compile_test.c)
target_include_directories(nnd_cuda_compile_test PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(nnd_cuda_compile_test PRIVATE nndrt)
add_test(NAME cuda_compile_error COMMAND nnd_cuda_compile_test)
set_tests_properties(cuda_compile_error PROPERTIES LABELS cuda SKIP_RETURN_CODE 77)

foreach(case ptx_mlp ptx_cnn ptx_every_op emulate_every_op emulate_tiled emulate_mlp emulate_ops emulate_cudnn emulate_smem emulate_block errors
             gpu_mlp gpu_cnn gpu_every_op gpu_ops gpu_cudnn gpu_errors)
  add_test(NAME cuda_${case}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cuda/run.sh $<TARGET_FILE:nndc>
      ${CMAKE_CURRENT_BINARY_DIR}/cuda/${case} ${case})
  set_tests_properties(cuda_${case} PROPERTIES LABELS cuda SKIP_RETURN_CODE 77 TIMEOUT 900)
endforeach()
# the long host emulations (minutes each) run in the plain build only: the
# sanitizer pass of scripts/test.sh leaves out the label "slow"
set_tests_properties(cuda_emulate_every_op cuda_emulate_tiled cuda_emulate_ops cuda_emulate_smem cuda_emulate_block PROPERTIES LABELS "cuda;slow")
