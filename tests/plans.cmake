# plans.cmake - reduction plan families against sums computed by gen.py.
foreach(case golden reproducible)
  add_test(NAME plans_${case}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/plans/run.sh $<TARGET_FILE:nndc>
      ${CMAKE_CURRENT_BINARY_DIR}/plans/${case} ${case})
  set_tests_properties(plans_${case} PROPERTIES LABELS determinism)
endforeach()
