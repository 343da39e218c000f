# fanin_api_tests: the protocol layer (src/server/api): parsers, formatters,
# the error table, metrics text, auth. Pure functions: no sockets, no engine.
find_package(GTest REQUIRED)
include(GoogleTest)
file(GLOB FANIN_API_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/test_api_*.cpp)
add_executable(fanin_api_tests ${FANIN_API_TESTS})
target_link_libraries(fanin_api_tests PRIVATE fanin_api GTest::gtest GTest::gtest_main)
gtest_discover_tests(fanin_api_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 120 LABELS server)
