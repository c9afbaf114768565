# e2e.cmake - source to running program (tests/e2e/run.sh).
foreach(case mlp_ci cnn_ci tiny_same_bits truncated_idx corrupt_idx missing_file nan_loss bad_label
             infer_pipe csv_names threads resume kill_in_save batch_invariance layer_add verify profile cpu_levels fuse)
  add_test(NAME e2e_${case}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/e2e/run.sh $<TARGET_FILE:nndc>
      ${CMAKE_CURRENT_BINARY_DIR}/e2e/${case} ${case})
  set_tests_properties(e2e_${case} PROPERTIES LABELS e2e SKIP_RETURN_CODE 77)
endforeach()
# two builds of every_op and the MLP compared bit for bit: the plain build
# only (every other e2e case compiles with fusion on under the sanitizers)
set_tests_properties(e2e_fuse PROPERTIES LABELS "e2e;slow")
