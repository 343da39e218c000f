# server.nginx_failover: two `fanin serve` replicas behind nginx (configured
# from deploy/nginx/fanin.conf.template), one killed with SIGKILL under load
# (tests/server/nginx/run.sh, docs/deploy.md). About 20 s of two busy cores
# and it needs nginx, so it is a long-mode test: registered only when the
# build folder is configured with FANIN_CI_LONG=1 in the environment (the
# README's `ctest --preset default` does not see it otherwise), and only in
# builds without a sanitizer (16 clients against a TSan-built server measure
# the sanitizer, not the failover). .ci/run's long mode installs nginx-light
# and runs it with `ctest --preset default -L long`. Without nginx it skips
# (exit 77). By hand, without reconfiguring:
#   bash tests/server/nginx/run.sh build/default/fanin .
if(DEFINED ENV{FANIN_CI_LONG} AND "$ENV{FANIN_CI_LONG}" STREQUAL "1" AND FANIN_SANITIZE STREQUAL "")
  add_test(NAME server.nginx_failover
           COMMAND bash ${CMAKE_SOURCE_DIR}/tests/server/nginx/run.sh $<TARGET_FILE:fanin_cli> ${CMAKE_SOURCE_DIR})
  set_tests_properties(server.nginx_failover PROPERTIES LABELS long SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()
