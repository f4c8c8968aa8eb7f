# spillway_add_plugin(<name> SOURCES ... [LIBRARIES ...])
# Builds plugins/<name> as spillway-<name>.so in ${SPILLWAY_PLUGIN_OUTPUT_DIR}: a MODULE with hidden
# visibility and a version script that exports only sw_plugin_entry, so nothing else leaks.
set(SPILLWAY_PLUGIN_MAP "${CMAKE_CURRENT_LIST_DIR}/plugin.map" CACHE INTERNAL "")
function(spillway_add_plugin name)
  cmake_parse_arguments(P "" "" "SOURCES;LIBRARIES" ${ARGN})
  set(target spillway-${name})
  add_library(${target} MODULE ${P_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME spillway-${name}
    LIBRARY_OUTPUT_DIRECTORY "${SPILLWAY_PLUGIN_OUTPUT_DIR}"
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_link_libraries(${target} PRIVATE spillway::sdk ${P_LIBRARIES})
  target_link_options(${target} PRIVATE -Wl,--no-undefined -Wl,--version-script=${SPILLWAY_PLUGIN_MAP})
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS ${SPILLWAY_PLUGIN_MAP})
  set_property(GLOBAL APPEND PROPERTY SPILLWAY_PLUGINS ${target})
  install(TARGETS ${target} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/spillway/plugins COMPONENT runtime)
endfunction()
