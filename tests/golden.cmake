# golden.cmake - runs one command and compares one of its streams with an
# expected file (cmake -P).  Variables:
#   CMD       the command, a ;-list
#   EXPECTED  file with the expected text
#   STREAM    stdout or stderr (default stderr)
#   RC        expected exit status (default 0)
#   ACTUAL    where to leave the actual text for inspection
execute_process(COMMAND ${CMD} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT DEFINED RC)
  set(RC 0)
endif()
if(NOT DEFINED STREAM OR STREAM STREQUAL "stderr")
  set(text "${err}")
else()
  set(text "${out}")
endif()
if(DEFINED ACTUAL)
  file(WRITE ${ACTUAL} "${text}")
endif()
file(READ ${EXPECTED} want)
if(NOT rc EQUAL RC)
  message(FATAL_ERROR "exit status ${rc}, expected ${RC}\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(NOT text STREQUAL want)
  message(FATAL_ERROR "output differs from ${EXPECTED}\n--- expected\n${want}\n--- actual\n${text}")
endif()
