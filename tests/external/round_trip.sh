#!/usr/bin/env bash
# tests/external/round_trip.sh <build dir> <file_sink source dir> [extra compiler flags]
#
# The plugin author's round trip, against an installed Spillway only:
#   1. cmake --install the build into a temporary prefix;
#   2. configure file_sink/ with nothing but -DCMAKE_PREFIX_PATH=<prefix> (find_package(SpillwaySDK)),
#      build it, and run its testkit tests;
#   3. compile the C example with the pkg-config flags alone (the C ABI needs no C++);
#   4. the installed `spillway plugins` lists the example (and, by default, the installed plugins), `spillway validate` accepts a config
#      using it (and refuses one without its required option, naming it), and `spillway run`
#      publishes an event through it into its file.
# The temporary folder is removed on success and kept (and named) on failure.
set -euo pipefail

build=$1
src=$2
flags=${3:-}
jobs=2
cmake=${CMAKE:-cmake}  # CTest passes the cmake that configured the build
work="$(mktemp -d /tmp/spillway-round-trip.XXXXXX)"
prefix="$work/prefix"
ext="$work/file_sink"
engine_pid=""

finish() {
  local rc=$?
  if [ -n "$engine_pid" ]; then kill "$engine_pid" 2>/dev/null || true; wait "$engine_pid" 2>/dev/null || true; fi
  if [ $rc -eq 0 ]; then rm -rf "$work"; else echo "round trip FAILED (exit $rc); files kept in $work" >&2; fi
}
trap finish EXIT
step() { printf '\n=== [%3ss] %s\n' "$SECONDS" "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

step "install $build into $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log" >&2; fail "cmake --install"; }
for f in include/spillway/plugin.h include/spillway/sdk.hpp include/spillway/testkit/host.hpp \
         include/spillway/testkit/sink_suite.hpp lib/libspillway-testkit.a \
         lib/cmake/SpillwaySDK/SpillwaySDKConfig.cmake lib/pkgconfig/spillway-sdk.pc bin/spillway; do
  [ -e "$prefix/$f" ] || fail "the install has no $f"
done
# The pipeline config below uses these next to the example (SPILLWAY_PLUGINS must include them).
for p in sqlite inproc adaptive; do
  [ -e "$prefix/lib/spillway/plugins/spillway-$p.so" ] || fail "the install has no $p plugin (is it in SPILLWAY_PLUGINS?)"
done

step "configure the example against the installed SDK"
cfg=(-S "$src" -B "$ext" -DCMAKE_PREFIX_PATH="$prefix")
if [ -n "$flags" ]; then
  # A sanitized build installs a sanitized testkit; build the example the same way.
  cfg+=(-DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags"
        -DCMAKE_MODULE_LINKER_FLAGS="$flags")
fi
"$cmake" "${cfg[@]}" >"$work/configure.log" 2>&1 || { cat "$work/configure.log" >&2; fail "configure"; }
grep -q "$prefix" "$ext/CMakeCache.txt" || fail "SpillwaySDK was not found in the prefix"

step "build the example"
"$cmake" --build "$ext" -j "$jobs" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "build"; }
if grep -i "warning:" "$work/build.log"; then fail "the example builds with warnings"; fi

step "run its testkit tests"
"$ext/file_sink_test" --gtest_brief=1 || fail "file_sink_test"

step "compile the C example with pkg-config alone"
cflags="$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags spillway-sdk)"
echo "pkg-config --cflags spillway-sdk: $cflags"
# shellcheck disable=SC2086
"${CC:-cc}" -std=c11 -Wall -Wextra -Wpedantic -Werror -fPIC -shared $flags $cflags -o "$work/spillway-cfile.so" "$src/file_sink.c"

spillway="$prefix/bin/spillway"
step "the installed engine lists the example plugin"
"$spillway" plugins --plugin-path "$ext" | tee "$work/plugins.txt"
grep -Eq "^sink +file +1\.0\.0" "$work/plugins.txt" || fail "spillway plugins does not list the file sink"
grep -Eq "^sink +cfile +1\.0\.0" "$work/plugins.txt" || fail "spillway plugins does not list the C file sink"

step "the installed engine finds its own plugins by default"
env -u SPILLWAY_PLUGIN_PATH "$spillway" plugins | tee "$work/plugins-default.txt"
grep -q " $prefix/lib/spillway/plugins/spillway-sqlite.so" "$work/plugins-default.txt" ||
  fail "spillway plugins does not search $prefix/lib/spillway/plugins by default"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
write_config() {  # <file> <sink table body>
  cat >"$1" <<TOML
[engine]
plugin_path = ["$prefix/lib/spillway/plugins", "$ext/spillway-file.so"]
http_listen = "127.0.0.1:$port"

[sink.events]
plugin = "file"
$2

[store.outbox]
plugin = "sqlite"
path = "$work/outbox.db"

[notifier.doorbell]
plugin = "inproc"

[scheduler.poll]
plugin = "adaptive"

[pipeline.orders]
sink = "events"
store = "outbox"
notifier = "doorbell"
scheduler = "poll"
mode = "direct-first"
topic = "orders.events"
TOML
}
write_config "$work/good.toml" "path = \"$work/events.jsonl\""
write_config "$work/bad.toml" ""

step "the installed engine validates a config using it"
"$spillway" validate "$work/good.toml" --env testing >"$work/validate.txt" 2>&1 || { cat "$work/validate.txt" >&2; fail "validate good.toml"; }
echo "validate good.toml: ok"
rc=0
"$spillway" validate "$work/bad.toml" --env testing >"$work/validate-bad.txt" 2>&1 || rc=$?
cat "$work/validate-bad.txt"
[ $rc -eq 1 ] || fail "validate bad.toml exited $rc, expected 1 (invalid config)"
grep -q "path" "$work/validate-bad.txt" || fail "the refusal does not name the missing option 'path'"

step "the installed engine publishes through it"
"$spillway" run "$work/good.toml" --env testing >"$work/run.log" 2>&1 &
engine_pid=$!
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  kill -0 "$engine_pid" 2>/dev/null || { cat "$work/run.log" >&2; fail "spillway run exited"; }
  sleep 0.1
done
reply="$(curl -sS -X POST -H 'Content-Type: application/json' \
  --data '{"key":"customer-7","payload":{"order":42}}' "http://127.0.0.1:$port/v1/pipelines/orders/events")"
echo "publish: $reply"
echo "$reply" | grep -q '"path":"direct"' || { cat "$work/run.log" >&2; fail "the event did not go direct through the file sink"; }
grep -q '"topic":"orders.events","key":"customer-7"' "$work/events.jsonl" || fail "the event is not in the sink's file"
cat "$work/events.jsonl"
kill -TERM "$engine_pid"
rc=0; wait "$engine_pid" || rc=$?
engine_pid=""
[ $rc -eq 0 ] || { cat "$work/run.log" >&2; fail "spillway run exited $rc on SIGTERM"; }

step "round trip passed"
