# Runtime tests (included from tests/CMakeLists.txt).  All link the static
# runtime library `nndrt`; programs exit 77 when an optional oracle is absent.

# ---- runtime core: Philox, SHA-256, math functions, dataset readers ----
set(NND_RT_CORE_DIR ${CMAKE_CURRENT_SOURCE_DIR}/runtime_core)

if(TARGET nndrt)
  foreach(t philox hash data)
    add_executable(nnd_test_${t} ${NND_RT_CORE_DIR}/test_${t}.c)
    target_include_directories(nnd_test_${t} PRIVATE ${PROJECT_SOURCE_DIR})
    target_link_libraries(nnd_test_${t} PRIVATE nndrt)
    add_test(NAME runtime_${t} COMMAND nnd_test_${t})
    set_tests_properties(runtime_${t} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
  endforeach()

  # Math accuracy against MPFR: built only when MPFR is installed.
  find_path(NND_MPFR_INC mpfr.h)
  find_library(NND_MPFR_LIB mpfr)
  find_library(NND_GMP_LIB gmp)
  if(NND_MPFR_INC AND NND_MPFR_LIB AND NND_GMP_LIB)
    add_executable(nnd_test_math ${NND_RT_CORE_DIR}/test_math.c)
    target_include_directories(nnd_test_math PRIVATE ${PROJECT_SOURCE_DIR} ${NND_MPFR_INC})
    target_link_libraries(nnd_test_math PRIVATE nndrt ${NND_MPFR_LIB} ${NND_GMP_LIB} m)
    add_test(NAME runtime_math_mpfr COMMAND nnd_test_math)
    set_tests_properties(runtime_math_mpfr PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900)
  else()
    message(STATUS "MPFR not found: runtime_math_mpfr test not built")
  endif()

  # All 2^32 inputs of every unary math function (minutes each): a tool,
  # not a CTest case.  See docs/math.md.
  add_executable(nnd_math_exhaustive ${NND_RT_CORE_DIR}/math_exhaustive.c)
  target_include_directories(nnd_math_exhaustive PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(nnd_math_exhaustive PRIVATE nndrt m pthread)
endif()
