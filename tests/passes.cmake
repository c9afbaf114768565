# passes.cmake - golden tests of the compiler's middle: semantic
# diagnostics (diag/X.nnd -> `nndc check` stderr == X.expected, exit 1)
# and IR dumps (ir/X.nnd -> `nndc emit --stage ...` == X.STAGE.expected).
# Refresh after an intended change, in the golden's directory:
#   nndc check X.nnd 2> X.expected
#   nndc emit X.nnd --stage ir > X.ir.expected   (and lower, plans, manifest)
set(_golden ${CMAKE_CURRENT_SOURCE_DIR}/golden.cmake)
set(_actual ${CMAKE_CURRENT_BINARY_DIR}/golden_actual)
file(MAKE_DIRECTORY ${_actual})

file(GLOB _diag CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/diag/*.nnd)
foreach(f ${_diag})
  get_filename_component(n ${f} NAME_WE)
  add_test(NAME diag_${n}
    COMMAND ${CMAKE_COMMAND} "-DCMD=$<TARGET_FILE:nndc>;check;${n}.nnd"
      -DEXPECTED=${n}.expected -DRC=1 -DACTUAL=${_actual}/diag_${n}.txt -P ${_golden}
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/diag)
  set_tests_properties(diag_${n} PROPERTIES LABELS passes)
endforeach()

file(GLOB _ir CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/ir/*.nnd)
foreach(f ${_ir})
  get_filename_component(n ${f} NAME_WE)
  foreach(stage ir lower plans manifest)
    if(NOT EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/ir/${n}.${stage}.expected)
      continue()
    endif()
    if(stage STREQUAL "lower")
      set(args "emit;${n}.nnd;--stage;ir;--after;lower")
    else()
      set(args "emit;${n}.nnd;--stage;${stage}")
    endif()
    add_test(NAME ir_${n}_${stage}
      COMMAND ${CMAKE_COMMAND} "-DCMD=$<TARGET_FILE:nndc>;${args}" -DSTREAM=stdout
        -DEXPECTED=${n}.${stage}.expected -DACTUAL=${_actual}/ir_${n}_${stage}.txt -P ${_golden}
      WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/ir)
    set_tests_properties(ir_${n}_${stage} PROPERTIES LABELS passes)
  endforeach()
endforeach()

# Bad command lines: exit 1 and a message naming the flag.
add_test(NAME nndc_bad_flag COMMAND $<TARGET_FILE:nndc> emit ../ir/tiny_mlp.nnd --stage nope
  WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/ir)
set_tests_properties(nndc_bad_flag PROPERTIES WILL_FAIL ON LABELS passes)

# Plan overrides by instance-path pattern, and a malformed --plan.
add_test(NAME ir_tiny_mlp_plans_override
  COMMAND ${CMAKE_COMMAND} "-DCMD=$<TARGET_FILE:nndc>;emit;tiny_mlp.nnd;--stage;plans;--plan;net.h*=blocked:4,loss=tree:2"
    -DSTREAM=stdout -DEXPECTED=tiny_mlp.plans-override.expected -P ${_golden}
  WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/ir)
add_test(NAME ir_bad_plan
  COMMAND ${CMAKE_COMMAND} "-DCMD=$<TARGET_FILE:nndc>;emit;tiny_mlp.nnd;--stage;plans;--plan;net.h=blocked:x"
    -DEXPECTED=bad_plan.expected -DRC=1 -P ${_golden}
  WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/ir)
# fused plans: +fma on matmuls only (a pattern covering sums leaves them
# unfused); a tree cannot be fused
add_test(NAME ir_tiny_mlp_plans_fma
  COMMAND ${CMAKE_COMMAND} "-DCMD=$<TARGET_FILE:nndc>;emit;tiny_mlp.nnd;--stage;plans;--plan;net.h*=seq,net.g*=blocked:4+fma,*=seq+fma"
    -DSTREAM=stdout -DEXPECTED=tiny_mlp.plans-fma.expected -P ${_golden}
  WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/ir)
add_test(NAME ir_bad_plan_fma
  COMMAND ${CMAKE_COMMAND} "-DCMD=$<TARGET_FILE:nndc>;emit;tiny_mlp.nnd;--stage;plans;--plan;tree:2+fma"
    -DEXPECTED=bad_plan_fma.expected -DRC=1 -P ${_golden}
  WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/ir)
# broadcast's gradient (sum_to) takes the plan of the broadcast's statement
add_test(NAME ir_new_ops_plans_override
  COMMAND ${CMAKE_COMMAND} "-DCMD=$<TARGET_FILE:nndc>;emit;new_ops.nnd;--stage;plans;--plan;net.b=tree:2,net.e=blocked:4"
    -DSTREAM=stdout -DEXPECTED=new_ops.plans-override.expected -P ${_golden}
  WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/ir)
set_tests_properties(ir_tiny_mlp_plans_override ir_bad_plan ir_tiny_mlp_plans_fma ir_bad_plan_fma
  ir_new_ops_plans_override PROPERTIES LABELS passes)

# the verifier's fusion and memory-plan checks catch broken plans
add_executable(nnd_verify_test ${CMAKE_CURRENT_SOURCE_DIR}/verify/verify_test.c)
target_link_libraries(nnd_verify_test PRIVATE nndcore)
add_test(NAME ir_verify_storage
  COMMAND nnd_verify_test ${CMAKE_CURRENT_SOURCE_DIR}/ir/tiny_mlp.nnd
  WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/ir)
set_tests_properties(ir_verify_storage PROPERTIES LABELS passes)
