# cli.cmake - the command line's contract at its edges (tests/cli/run.sh):
# build's -o and --target, results to a full stdout, --save checked before
# training, batches larger than the data, running out of memory, defs
# nested past lowering's recursion budget, emit --after's pass list, a
# batchnorm's step of one row, epochs at the int64 limit.
foreach(case build_output target stdout_full save_early big_batch out_of_memory deep_defs emit_after batchnorm_rows huge_epochs)
  add_test(NAME cli_${case}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/run.sh $<TARGET_FILE:nndc>
      ${CMAKE_CURRENT_BINARY_DIR}/cli/${case} ${case})
  set_tests_properties(cli_${case} PROPERTIES LABELS cli SKIP_RETURN_CODE 77)
endforeach()
