# Debian packages with CPack, one per install component (included once, at the end of the top-level
# CMakeLists.txt, after every install() rule):
#
#   spillway      COMPONENT runtime: the binary, the plugins, the SQL, the example configs, the unit
#   spillway-dev  COMPONENT dev:     the SDK (headers, testkit, CMake package, pkg-config file),
#                                    depending on spillway of the same version
#
#   cmake --build build && cpack -G DEB -B build/packages --config build/CPackConfig.cmake
#
# The packages install under /usr (CPACK_PACKAGING_INSTALL_PREFIX), so the binary is /usr/bin/spillway
# and it finds its plugins in /usr/${CMAKE_INSTALL_LIBDIR}/spillway/plugins (engine/plugin/loader.cpp,
# default_plugin_path). Install rules without a component ("Unspecified", e.g. tools/mock-kafka, a
# test tool) are in no package. tests/package/ builds, unpacks and runs them (label: package).

# The systemd unit runs /usr/bin/spillway, which only a /usr install provides: it is installed when
# the runtime component is asked for by name (cpack, or `cmake --install --component runtime`), never
# by a plain `cmake --install`, which by default lands in /usr/local and would put a unit pointing at
# a binary that is not there where systemd looks (/usr/local/lib/systemd/system).
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/spillway@.service
        DESTINATION lib/systemd/system COMPONENT runtime EXCLUDE_FROM_ALL)

# cpack runs the build tool's `preinstall` target before it installs, which builds `all` — here every
# test too. Packages are made from a tree that was built already (`cmake --build` first; CI runs the
# package test after the full build), so installing does not build. (`cmake --install` never did.)
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

set(SPILLWAY_PACKAGE_MAINTAINER "Spillway maintainers <maintainers@spillway.invalid>"
    CACHE STRING "Maintainer field of the Debian packages")
set(SPILLWAY_PACKAGE_HOMEPAGE "" CACHE STRING "Homepage field of the Debian packages (none when empty)")
set(SPILLWAY_PACKAGE_RELEASE "1" CACHE STRING "Debian revision of the packages: <project version>-<this>")

set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "spillway")
set(CPACK_PACKAGE_VENDOR "Spillway")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "${SPILLWAY_PACKAGE_MAINTAINER}")
if(SPILLWAY_PACKAGE_HOMEPAGE)
  set(CPACK_PACKAGE_HOMEPAGE_URL "${SPILLWAY_PACKAGE_HOMEPAGE}")
endif()
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_STRIP_FILES ON)  # the line tables (-g1) stay in the build tree

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_COMPONENT_DEV_DEPENDS runtime)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)  # spillway-dev: Depends: spillway (= <version>)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # <name>_<version>-<release>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE "${SPILLWAY_PACKAGE_RELEASE}")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
set(CPACK_DEBIAN_COMPRESSION_TYPE "xz")
# Depends from the ELF files' NEEDED entries: dpkg-shlibdeps reads the binary and every plugin (the
# MODULE libraries are ELF shared objects too), so librdkafka, SOCI, libpq, hiredis... are listed.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME "spillway")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION "net")
# passwd: useradd, for the service user in postinst. postgresql-client: psql, to apply the trigger SQL.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS "passwd")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SUGGESTS "postgresql-client")
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION "gets domain events into Kafka, spilling into an outbox when it cannot
Spillway sends each event straight to Kafka; only when Kafka cannot take it
does the event spill into a durable outbox (PostgreSQL or SQLite), from
which a relay, woken by a doorbell (Redis, PostgreSQL NOTIFY, in-process) or
an adaptive poll, releases it once Kafka is back.

This package holds the spillway command, its plugins (sinks, stores,
notifiers, schedulers and transforms, in
/usr/${CMAKE_INSTALL_LIBDIR}/spillway/plugins), libspillway-engine (the
engine for a C++ service to link), the PostgreSQL trigger that rings the
pgnotify doorbell, example pipeline files and the systemd unit
spillway@.service.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME "spillway-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION "libdevel")
# The testkit links GoogleTest (the SDK's CMake package finds it only for COMPONENTS testkit).
set(CPACK_DEBIAN_DEV_PACKAGE_RECOMMENDS "libgtest-dev")
set(CPACK_DEBIAN_DEV_DESCRIPTION "SDK for Spillway plugins, and the embedded engine's C++ API
The plugin SDK: the C ABI header (spillway/plugin.h), the header-only C++
layer (spillway/sdk.hpp), the testkit (a stand-alone plugin host and the
conformance suites for GoogleTest), the CMake package SpillwaySDK
(find_package(SpillwaySDK), spillway_sdk_add_plugin) and the pkg-config file
spillway-sdk.

For a C++ service embedding the engine: spillway/engine.hpp, the CMake
package Spillway and the pkg-config file spillway-engine, linking
libspillway-engine from the spillway package.")

# The runtime package's maintainer scripts: the unit runs as the system user spillway, created here
# (as deploy/README.md does by hand); systemd rereads its units. The user is kept on removal, as
# Debian keeps system users. A library in the package's libdir is picked up through the ldconfig
# trigger.
set(_spillway_debian "${PROJECT_BINARY_DIR}/packaging/debian")
file(MAKE_DIRECTORY "${_spillway_debian}")
file(WRITE "${_spillway_debian}/postinst" [=[#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd spillway >/dev/null; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin --comment "Spillway engine" spillway
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || true
    fi
fi
exit 0
]=])
file(WRITE "${_spillway_debian}/postrm" [=[#!/bin/sh
set -e
if [ "$1" = remove ] || [ "$1" = purge ]; then
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || true
    fi
fi
exit 0
]=])
file(WRITE "${_spillway_debian}/triggers" "activate-noawait ldconfig\n")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA
    "${_spillway_debian}/postinst;${_spillway_debian}/postrm;${_spillway_debian}/triggers")

include(CPack)
