# ctest: runs `fanin ARGS` and checks its exit code and output. Usage:
#   cmake -DFANIN=<exe> -DARGS="bench --threads 0" -DEXPECT_RC=2
#         -DEXPECT_OUTPUT=<regex over stdout+stderr> -P expect_exit.cmake
if(NOT FANIN OR NOT DEFINED EXPECT_RC)
  message(FATAL_ERROR "expect_exit.cmake needs -DFANIN=<exe> -DARGS=... -DEXPECT_RC=N")
endif()
separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND "${FANIN}" ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE stdout
                ERROR_VARIABLE stderr TIMEOUT 30)
set(output "${stdout}${stderr}")
if(NOT rc STREQUAL "${EXPECT_RC}")
  message(FATAL_ERROR "fanin ${ARGS}: exit code '${rc}', expected ${EXPECT_RC}\n${output}")
endif()
if(DEFINED EXPECT_OUTPUT AND NOT output MATCHES "${EXPECT_OUTPUT}")
  message(FATAL_ERROR "fanin ${ARGS}: output does not match '${EXPECT_OUTPUT}':\n${output}")
endif()
if(EXPECT_RC EQUAL 2 AND stdout)
  message(FATAL_ERROR "fanin ${ARGS}: a usage error must print nothing on stdout, got:\n${stdout}")
endif()
message(STATUS "fanin ${ARGS}: exit ${rc} as expected")
