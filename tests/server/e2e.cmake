# End-to-end tests of `fanin serve` (tests/server/e2e): the real binary on
# loopback, driven by raw sockets, requests, and the unchanged openai and
# tritonclient packages (pinned in e2e/requirements.txt, installed by run.sh
# into ${CMAKE_BINARY_DIR}/e2e-venv, once).
#
#   server.e2e.venv  makes the venv (a fixture of the two below, so that a
#                    parallel ctest does not build it twice)
#   server.e2e.api   parity, the two client packages, bad inputs, options, metrics
#   server.e2e.load  slow and broken clients, 256 concurrent clients, request
#                    timeouts, SIGTERM under load (RUN_SERIAL: its timing checks
#                    want the machine's two cores to themselves)
# Each skips (77) when models/all-MiniLM-L6-v2 is missing (scripts/
# fetch_models.sh) or the binary has no `serve`. FANIN_SANITIZE tells the
# tests to shrink their load under a sanitizer (same assertions).
set(FANIN_E2E_DIR ${CMAKE_SOURCE_DIR}/tests/server/e2e)
set(FANIN_E2E_RUN bash ${FANIN_E2E_DIR}/run.sh $<TARGET_FILE:fanin_cli> ${CMAKE_SOURCE_DIR}
    ${CMAKE_BINARY_DIR})
set(FANIN_E2E_ENV "FANIN_SANITIZE=${FANIN_SANITIZE}")

add_test(NAME server.e2e.venv COMMAND ${CMAKE_COMMAND} -E env FANIN_E2E_SETUP_ONLY=1
         ${FANIN_E2E_RUN})
set_tests_properties(server.e2e.venv PROPERTIES
  TIMEOUT 900 LABELS server FIXTURES_SETUP fanin_e2e_venv)

add_test(NAME server.e2e.api COMMAND ${FANIN_E2E_RUN}
         ${FANIN_E2E_DIR}/test_parity.py ${FANIN_E2E_DIR}/test_openai_client.py
         ${FANIN_E2E_DIR}/test_triton_client.py ${FANIN_E2E_DIR}/test_routes.py
         ${FANIN_E2E_DIR}/test_bad_inputs.py ${FANIN_E2E_DIR}/test_options.py
         ${FANIN_E2E_DIR}/test_metrics.py)
add_test(NAME server.e2e.load COMMAND ${FANIN_E2E_RUN}
         ${FANIN_E2E_DIR}/test_load.py ${FANIN_E2E_DIR}/test_sigterm.py)
set_tests_properties(server.e2e.api server.e2e.load PROPERTIES
  TIMEOUT 1200 LABELS server SKIP_RETURN_CODE 77 FIXTURES_REQUIRED fanin_e2e_venv
  ENVIRONMENT "${FANIN_E2E_ENV}")
set_tests_properties(server.e2e.load PROPERTIES RUN_SERIAL TRUE)

# Every test file belongs to one of the entries above.
file(GLOB FANIN_E2E_FILES RELATIVE ${FANIN_E2E_DIR} CONFIGURE_DEPENDS ${FANIN_E2E_DIR}/test_*.py)
foreach(f ${FANIN_E2E_FILES})
  if(NOT f MATCHES "^test_(parity|openai_client|triton_client|routes|bad_inputs|options|metrics|load|sigterm)[.]py$")
    message(WARNING "tests/server/e2e/${f} is in no ctest entry: add it to tests/server/e2e.cmake")
  endif()
endforeach()
