#!/usr/bin/env bash
# tests/package/check_package.sh <build dir> <CMAKE_INSTALL_LIBDIR> <project version> <plugin targets, comma-separated>
#
# The Debian packages of a built tree, made and used as an operator would, without root:
#   1. cpack -G DEB into a temporary folder: exactly spillway and spillway-dev;
#   2. their control fields: version, maintainer, section, description; Depends computed by
#      dpkg-shlibdeps naming the package of every library the binary and each plugin needs;
#      spillway-dev depends on spillway (= the same version); the maintainer scripts parse;
#   3. contents: every file a plain `cmake --install` installs is in exactly one of them (the
#      runtime files in spillway, the SDK in spillway-dev), nothing more but the systemd unit;
#   4. both unpacked with `dpkg-deb -x` into a fresh root (see below), then from there: the
#      installed `spillway plugins` lists every plugin from <root>/usr/<libdir>/spillway/plugins with
#      no SPILLWAY_PLUGIN_PATH, `spillway validate` accepts the installed example configs, the unit
#      is where systemd looks and runs the packaged binary (`systemd-analyze verify`, when there),
#      the SQL is there, and the SDK is usable (pkg-config, a C compile, find_package).
#
# Why `dpkg-deb -x` and not `dpkg --root`: dpkg runs the maintainer scripts chrooted into the root
# (useradd there needs a whole system in it, and chroot needs root), keeps a database there and
# would need --force-depends for every library; unpacking is exactly the files dpkg would place,
# needs no privileges, and the scripts are checked apart (sh -n, what they call).
# The temporary folder is removed on success and kept (and named) on failure.
set -euo pipefail

build=$1
libdir=$2
version=$3
plugin_list=$4
IFS=, read -r -a plugin_targets <<<"$plugin_list"
cmake=${CMAKE:-cmake}
cpack=${CPACK:-cpack}

for tool in dpkg-deb dpkg-shlibdeps dpkg file readelf; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed (Debian packages dpkg, dpkg-dev, file, binutils)"; exit 77; }
done

work="$(mktemp -d /tmp/spillway-package.XXXXXX)"
finish() {
  local rc=$?
  if [ $rc -eq 0 ]; then rm -rf "$work"; else echo "package test FAILED (exit $rc); files kept in $work" >&2; fi
}
trap finish EXIT
step() { printf '\n=== [%3ss] %s\n' "$SECONDS" "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
failures=0
problem() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

step "cpack -G DEB for $build"
# gzip, not the packages' xz: the test checks what is in them, and xz of a sanitized build (26 MB)
# alone took three minutes here.
"$cpack" -G DEB -B "$work/out" --config "$build/CPackConfig.cmake" -D CPACK_DEBIAN_COMPRESSION_TYPE=gzip \
  >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log" >&2; fail "cpack"; }
grep -i "warning" "$work/cpack.log" && fail "cpack printed warnings (above)"
mapfile -t debs < <(find "$work/out" -maxdepth 1 -name '*.deb' -printf '%f\n' | sort)
printf '  %s\n' "${debs[@]}"
[ "${#debs[@]}" -eq 2 ] || fail "expected 2 packages (spillway, spillway-dev), cpack made ${#debs[@]}: ${debs[*]}"
arch="$(dpkg --print-architecture)"
runtime_deb=""; dev_deb=""
for d in "${debs[@]}"; do
  case "$d" in
    spillway_*_"$arch".deb) runtime_deb="$work/out/$d" ;;
    spillway-dev_*_"$arch".deb) dev_deb="$work/out/$d" ;;
  esac
done
[ -n "$runtime_deb" ] || fail "no spillway_<version>_$arch.deb"
[ -n "$dev_deb" ] || fail "no spillway-dev_<version>_$arch.deb"

step "control fields"
field() { dpkg-deb -f "$1" "$2"; }
for deb in "$runtime_deb" "$dev_deb"; do
  echo "--- $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
  dpkg-deb -f "$deb" Package Version Architecture Section Priority Maintainer Installed-Size Depends Recommends Suggests
done
[ "$(field "$runtime_deb" Package)" = spillway ] || problem "the runtime package is named $(field "$runtime_deb" Package)"
[ "$(field "$dev_deb" Package)" = spillway-dev ] || problem "the dev package is named $(field "$dev_deb" Package)"
pkg_version="$(field "$runtime_deb" Version)"
[[ "$pkg_version" == "$version" || "$pkg_version" == "$version"-* ]] ||
  problem "spillway's version $pkg_version is not the project's $version"
[ "$(field "$dev_deb" Version)" = "$pkg_version" ] || problem "spillway-dev's version differs from spillway's"
for deb in "$runtime_deb" "$dev_deb"; do
  for f in Maintainer Section Description; do
    [ -n "$(field "$deb" "$f")" ] || problem "$(basename "$deb") has no $f"
  done
  [ "$(field "$deb" Description | wc -l)" -ge 3 ] || problem "$(basename "$deb") has no long description"
done

# Depends as a list of package names (versions and alternatives dropped).
depends_names() { field "$1" Depends | sed -e 's/[,|]/\n/g' | sed -e 's/(.*)//' -e 's/:.*//' -e 's/ //g' | grep -v '^$' | sort -u; }
dev_depends="$(field "$dev_deb" Depends)"
grep -Eq "(^|, )spillway \(= $(printf '%s' "$pkg_version" | sed 's/[.+~]/\\&/g')\)(,|$)" <<<"$dev_depends" ||
  problem "spillway-dev does not depend on spillway (= $pkg_version): Depends: $dev_depends"
depends_names "$runtime_deb" >"$work/runtime-depends.txt"
has_plugin() { [[ ",$plugin_list," == *",spillway-$1,"* ]]; }
want_libs=(libc6 'libstdc\+\+6')
has_plugin kafka && want_libs+=(librdkafka1)
has_plugin postgres && want_libs+=(libsoci-core libsoci-postgresql libpq5)
has_plugin sqlite && want_libs+=(libsoci-core libsoci-sqlite3)
has_plugin redis && want_libs+=(libhiredis)
has_plugin pgnotify && want_libs+=(libpq5)
for lib in "${want_libs[@]}"; do
  grep -Eq "^$lib" "$work/runtime-depends.txt" || problem "spillway's Depends has no $lib"
done

step "unpack into a fresh root"
root="$work/root"
mkdir -p "$root"
dpkg-deb -x "$runtime_deb" "$root"
dpkg-deb -x "$dev_deb" "$root"
plugdir="$root/usr/$libdir/spillway/plugins"
spillway="$root/usr/bin/spillway"
[ -x "$spillway" ] || fail "spillway has no /usr/bin/spillway"

step "Depends names the package of every library each binary and plugin needs (dpkg-shlibdeps)"
# The package that ships a library, from dpkg's database; the path as ld.so finds it, else with /usr
# added or taken away (/lib is /usr/lib on a merged system, while packages name one of the two).
owner() {
  local p=$1 q pkg
  for q in "$p" "$(readlink -f "$p")" "/usr$p" "${p#/usr}"; do
    pkg="$(dpkg -S "$q" 2>/dev/null | awk -F: 'NR == 1 { print $1 }')" || true
    [ -n "$pkg" ] && { echo "$pkg"; return 0; }
  done
  return 1
}
mapfile -t elves < <(cd "$root" && find . -type f -exec file {} + | grep -E ':.*ELF.*dynamically linked' | cut -d: -f1 | sed 's|^\./||')
[ "${#elves[@]}" -ge $((1 + ${#plugin_targets[@]})) ] || fail "found ${#elves[@]} ELF files in the packages: ${elves[*]}"
declare -A dep_of=()  # library -> the Depends entry naming it
for elf in "${elves[@]}"; do
  readelf -d "$root/$elf" | grep -Eq '\((RPATH|RUNPATH)\)' && problem "$elf carries an RPATH/RUNPATH"
  for needed in $(readelf -d "$root/$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    # A library the packages ship themselves needs no Depends.
    [ -n "$(find "$root" -name "$needed" -print -quit)" ] && continue
    if [ -n "${dep_of[$needed]:-}" ]; then
      printf '  %-50s %-30s -> %s\n' "$elf" "$needed" "${dep_of[$needed]}"
      continue
    fi
    # (awk reads all of ldconfig's output: no SIGPIPE under pipefail)
    path="$(ldconfig -p | awk -v n="$needed" '$1 == n && /x86-64|64bit/ && !p { p = $NF } END { print p }')"
    [ -n "$path" ] || { problem "$elf needs $needed, which this system cannot find"; continue; }
    pkg="$(owner "$path")" || { problem "$elf needs $needed ($path), which no package owns"; continue; }
    # The package, or a name it Provides (shlibs may name that: libspdlog1.10 -> libspdlog1.10-fmt9).
    names="$pkg $(dpkg-query -W -f='${Provides}' "$pkg" 2>/dev/null | tr ',' '\n' | sed -e 's/(.*)//' -e 's/ //g' | tr '\n' ' ')"
    dep=""
    for n in $names; do grep -qx "$n" "$work/runtime-depends.txt" && { dep=$n; break; }; done
    if [ -n "$dep" ]; then
      dep_of[$needed]=$dep
      printf '  %-50s %-30s -> %s\n' "$elf" "$needed" "$dep"
    else
      problem "$elf needs $needed from $pkg, which spillway's Depends does not name"
    fi
  done
done

step "maintainer scripts"
dpkg-deb -e "$runtime_deb" "$work/control"
ls -l "$work/control"
for s in postinst postrm; do
  [ -x "$work/control/$s" ] || { problem "spillway has no executable $s"; continue; }
  sh -n "$work/control/$s" || problem "$s does not parse"
done
if ! grep -q "useradd --system" "$work/control/postinst" || ! grep -Eq "^ .* spillway$" "$work/control/postinst"; then
  problem "postinst does not create the user spillway"
fi
unit_user="$(sed -n 's/^User=//p' "$root/usr/lib/systemd/system/spillway@.service")"
[ "$unit_user" = spillway ] || problem "the unit runs as '$unit_user', not the user postinst creates (spillway)"
grep -qx "activate-noawait ldconfig" "$work/control/triggers" || problem "spillway has no ldconfig trigger"

step "contents: a plain cmake --install, split between the two packages"
"$cmake" --install "$build" --prefix "$work/plain" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; fail "cmake --install"; }
list_deb() { dpkg-deb --fsys-tarfile "$1" | tar -t | grep -v '/$' | sed -e 's|^\./||' -e 's|^usr/||' | sort; }
list_deb "$runtime_deb" >"$work/runtime.txt"
list_deb "$dev_deb" >"$work/dev.txt"
(cd "$work/plain" && find . -type f -o -type l) | sed 's|^\./||' | sort >"$work/plain.txt"
sort "$work/runtime.txt" "$work/dev.txt" >"$work/packaged.txt"
dups="$(uniq -d "$work/packaged.txt")"
[ -z "$dups" ] || problem "files in both packages (dpkg refuses to install both): $dups"
# Not packaged on purpose: test tools installed without a component. Packaged only: the unit.
missing="$(comm -23 "$work/plain.txt" <(sort -u "$work/packaged.txt") | grep -vx 'bin/mock-kafka' || true)"
[ -z "$missing" ] || problem "installed by cmake --install but in no package (an install() without COMPONENT runtime or dev?): $missing"
extra="$(comm -13 "$work/plain.txt" <(sort -u "$work/packaged.txt") | grep -vx 'lib/systemd/system/spillway@.service' || true)"
[ -z "$extra" ] || problem "in a package but not in cmake --install: $extra"
for f in bin/spillway lib/systemd/system/spillway@.service share/spillway/sql/pgnotify-trigger.sql \
         share/doc/spillway/configs/quickstart.toml share/doc/spillway/configs/examples/sqlite-single-node.toml; do
  grep -qx "$f" "$work/runtime.txt" || problem "spillway has no /usr/$f"
done
for t in "${plugin_targets[@]}"; do
  grep -qx "$libdir/spillway/plugins/$t.so" "$work/runtime.txt" || problem "spillway has no /usr/$libdir/spillway/plugins/$t.so"
done
for f in include/spillway/plugin.h include/spillway/sdk.hpp include/spillway/testkit/host.hpp \
         "$libdir/libspillway-testkit.a" "$libdir/cmake/SpillwaySDK/SpillwaySDKConfig.cmake" \
         "$libdir/cmake/SpillwaySDK/SpillwaySDKConfigVersion.cmake" "$libdir/cmake/SpillwaySDK/SpillwaySDKTargets.cmake" \
         "$libdir/cmake/SpillwaySDK/plugin.map" "$libdir/pkgconfig/spillway-sdk.pc"; do
  grep -qx "$f" "$work/dev.txt" || problem "spillway-dev has no /usr/$f"
done
grep -E '^include/|\.a$|/cmake/|/pkgconfig/' "$work/runtime.txt" && problem "spillway holds development files (above)"
grep -E '^bin/|/spillway/plugins/|^lib/systemd/|\.so\.[0-9]' "$work/dev.txt" && problem "spillway-dev holds runtime files (above)"

step "the installed spillway lists its plugins from /usr/$libdir/spillway/plugins"
cd "$work"
env -u SPILLWAY_PLUGIN_PATH "$spillway" plugins | tee "$work/plugins.txt"
for t in "${plugin_targets[@]}"; do
  grep -Eq " $plugdir/$t\.so\$" "$work/plugins.txt" || problem "spillway plugins does not list $plugdir/$t.so"
done
outside="$(awk 'NR > 1 { print $NF }' "$work/plugins.txt" | grep -v "^$plugdir/" || true)"
[ -z "$outside" ] || problem "spillway plugins lists plugins from outside the package: $outside"

step "the installed spillway validates the installed example configs"
examples="$root/usr/share/doc/spillway/configs"
for p in kafka sqlite inproc adaptive; do
  has_plugin $p || fail "the example configs need the $p plugin (is it in SPILLWAY_PLUGINS?)"
done
validate() {  # <config> <env...>: spillway validate, from the unpacked root only
  local cfg=$1; shift
  if env -u SPILLWAY_PLUGIN_PATH "$@" "$spillway" validate "$cfg" >"$work/validate.txt" 2>&1; then
    echo "  $(tail -n1 "$work/validate.txt")"
  else
    cat "$work/validate.txt" >&2; problem "spillway validate $cfg ($*)"
  fi
}
# The examples name no plugin_path: the installed binary finds the package's plugins by itself.
validate "$examples/quickstart.toml"
validate "$examples/examples/sqlite-single-node.toml" KAFKA_BROKERS=kafka-1:9092
validate "$examples/examples/environments.toml"
grep -q '^plugin_path' "$examples/quickstart.toml" "$examples/examples/"*.toml &&
  problem "an installed example names a plugin_path (above): installed, it would not find the package's plugins"

step "the systemd unit"
unit="$root/usr/lib/systemd/system/spillway@.service"
[ -f "$unit" ] || fail "no /usr/lib/systemd/system/spillway@.service"
exec_start="$(sed -n 's/^ExecStart=//p' "$unit")"
echo "  ExecStart=$exec_start"
binary="${exec_start%% *}"
[ -f "$root$binary" ] || problem "the unit runs $binary, which the package does not install"
"$root$binary" run --help >/dev/null || problem "$binary run --help"
if command -v systemd-analyze >/dev/null; then
  # verify refuses an ExecStart that does not exist on this machine: verify an instance of a copy
  # running the unpacked binary (a template alone is not loaded with its specifiers).
  mkdir -p "$work/unit"
  sed "s|^ExecStart=$binary |ExecStart=$root$binary |" "$unit" >"$work/unit/spillway@.service"
  ln -s spillway@.service "$work/unit/spillway@package.service"
  if systemd-analyze verify "$work/unit/spillway@package.service" >"$work/verify.txt" 2>&1 && [ ! -s "$work/verify.txt" ]; then
    echo "  systemd-analyze verify spillway@package.service: ok"
  else
    cat "$work/verify.txt" >&2; problem "systemd-analyze verify of the packaged unit"
  fi
else
  echo "  SKIP: systemd-analyze not installed (Debian package systemd): the unit was not verified"
fi

step "the SQL"
sql="$root/usr/share/spillway/sql/pgnotify-trigger.sql"
[ -s "$sql" ] || problem "no /usr/share/spillway/sql/pgnotify-trigger.sql"
grep -q "CREATE OR REPLACE TRIGGER spillway_outbox_ring" "$sql" || problem "pgnotify-trigger.sql is not the trigger"

step "the SDK from spillway-dev"
pc_dir="$root/usr/$libdir/pkgconfig"
cflags="$(PKG_CONFIG_PATH="$pc_dir" pkg-config --cflags spillway-sdk)" || problem "pkg-config spillway-sdk"
echo "  pkg-config --cflags spillway-sdk: $cflags"
inc="$(echo "${cflags#-I}" | xargs)"
[ "$(realpath -m "$inc")" = "$root/usr/include" ] || problem "spillway-sdk.pc's cflags are not the unpacked include folder: $cflags"
printf '#include <spillway/plugin.h>\nint abi_major(void) { return SW_ABI_MAJOR; }\n' >"$work/abi.c"
# shellcheck disable=SC2086
"${CC:-cc}" -std=c11 -Wall -Wextra -Werror -c $cflags -o "$work/abi.o" "$work/abi.c" || problem "a C file does not compile against the packaged plugin.h"
mkdir -p "$work/consumer"
cat >"$work/consumer/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(consumer LANGUAGES CXX)
find_package(SpillwaySDK 1 REQUIRED)
if(NOT TARGET spillway::sdk OR NOT COMMAND spillway_sdk_add_plugin)
  message(FATAL_ERROR "SpillwaySDK gave no spillway::sdk or spillway_sdk_add_plugin")
endif()
message(STATUS "SpillwaySDK ${SpillwaySDK_VERSION} from ${SpillwaySDK_DIR}")
CMAKE
if "$cmake" -S "$work/consumer" -B "$work/consumer/build" -DCMAKE_PREFIX_PATH="$root/usr" \
     -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF >"$work/consumer.log" 2>&1; then
  grep "SpillwaySDK " "$work/consumer.log" | sed 's/^/  /'
  grep -q "from $root/usr/$libdir/cmake/SpillwaySDK" "$work/consumer.log" || problem "find_package(SpillwaySDK) did not find the unpacked package"
else
  cat "$work/consumer.log" >&2; problem "find_package(SpillwaySDK) against the unpacked spillway-dev"
fi

[ "$failures" -eq 0 ] || fail "$failures problem(s), above"
step "packages passed: $(basename "$runtime_deb") $(du -k "$runtime_deb" | cut -f1) KiB, $(basename "$dev_deb") $(du -k "$dev_deb" | cut -f1) KiB"
