# Runtime training loop, checkpoints, logs and CLI, on a hand-written model
# (tests/rt_loop/fake_model.c) so they do not depend on the compiler.
add_executable(rt_fake_model ${CMAKE_CURRENT_SOURCE_DIR}/rt_loop/fake_model.c)
target_include_directories(rt_fake_model PRIVATE ${CMAKE_SOURCE_DIR})
target_link_libraries(rt_fake_model PRIVATE nndrt)

foreach(case determinism resume_epoch_end resume_mid_epoch steps0 eval corrupt flags errors log
             threads verify logdiff infer safetensors state_integrity identity)
  add_test(NAME rt_loop_${case}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/rt_loop/run.sh $<TARGET_FILE:rt_fake_model>
                   ${CMAKE_CURRENT_BINARY_DIR}/rt_loop/${case} ${case})
endforeach()
# safetensors and state_integrity edit files with tests/rt_loop/st_edit.py:
# skipped (77) without python3
set_tests_properties(rt_loop_safetensors rt_loop_state_integrity PROPERTIES SKIP_RETURN_CODE 77)
