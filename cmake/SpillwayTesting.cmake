# spillway_discover_tests(<target> LABELS <label>... [TIMEOUT <seconds>])
# gtest_discover_tests with several labels: CMake 3.25 splits PROPERTIES LABELS "a;b", so the
# properties are set by a script ctest includes after the discovered tests are defined.
function(spillway_discover_tests target)
  cmake_parse_arguments(T "" "TIMEOUT" "LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  gtest_discover_tests(${target} TEST_LIST ${target}_tests DISCOVERY_TIMEOUT 60)
  string(REPLACE ";" "\\;" labels "${T_LABELS}")
  set(script "${CMAKE_CURRENT_BINARY_DIR}/${target}_properties.cmake")
  file(WRITE "${script}"
    "set_tests_properties(\${${target}_tests} PROPERTIES LABELS \"${labels}\" TIMEOUT ${T_TIMEOUT})\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${script}")
endfunction()
