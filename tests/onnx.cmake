# onnx.cmake - ONNX conformance: the backend node tests of libonnx-testdata
# (onnx/backend/test/data), each read, mapped onto nnd IR ops, JIT-compiled
# and compared with its expected outputs by nnd_onnx_run (tests/onnx/).
# One CTest case per test directory found at configure time; a test whose
# ops, dtypes or attributes nnd cannot express exits 77 (skipped).
# tests/onnx/summary.sh runs them all and groups the skip reasons.
add_executable(nnd_onnx_run ${CMAKE_CURRENT_SOURCE_DIR}/onnx/onnx_run.c)
target_link_libraries(nnd_onnx_run PRIVATE nndcore m)
set_target_properties(nnd_onnx_run PROPERTIES ENABLE_EXPORTS ON)
target_link_options(nnd_onnx_run PRIVATE -Wl,--whole-archive $<TARGET_FILE:nndrt> -Wl,--no-whole-archive)

set(NND_ONNX_DATA /usr/share/libonnx-testdata/data CACHE PATH
    "libonnx-testdata's data directory (node/, pytorch-converted/, pytorch-operator/)")
foreach(kind node pytorch-converted pytorch-operator)
  if(IS_DIRECTORY ${NND_ONNX_DATA}/${kind})
    file(GLOB _onnx_dirs LIST_DIRECTORIES true ${NND_ONNX_DATA}/${kind}/*)
    foreach(d ${_onnx_dirs})
      if(EXISTS ${d}/model.onnx)
        get_filename_component(n ${d} NAME)
        add_test(NAME onnx_${kind}_${n} COMMAND nnd_onnx_run ${d})
        # The harness is a one-shot test tool that never frees its parsed
        # protobufs: leak checking is off for it alone (ASan's memory-error
        # checks and UBSan stay on); the compiler and runtime it drives are
        # leak-checked by every other test.
        set_tests_properties(onnx_${kind}_${n} PROPERTIES SKIP_RETURN_CODE 77 LABELS onnx
          ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0:abort_on_error=0")
      endif()
    endforeach()
  endif()
endforeach()
