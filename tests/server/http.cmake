# fanin_http_tests: the HTTP server core over real sockets on 127.0.0.1.
# GTest's imported targets are local to tests/, so find them here too.
find_package(GTest REQUIRED)
include(GoogleTest)
add_executable(fanin_http_tests ${CMAKE_CURRENT_LIST_DIR}/test_http_server.cpp)
target_link_libraries(fanin_http_tests PRIVATE fanin_http Boost::headers GTest::gtest GTest::gtest_main)
if(FANIN_SANITIZE STREQUAL "thread")
  target_compile_options(fanin_http_tests PRIVATE -Wno-tsan)  # Asio's fences, as in fanin_http
endif()
gtest_discover_tests(fanin_http_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 120 LABELS server)
