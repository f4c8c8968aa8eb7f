#!/usr/bin/env bash
# tests/external/embedded_service.sh <build dir> <embedded_service source dir> [extra compiler flags]
#
# The service author's path, against an installed Spillway only:
#   1. cmake --install the build into a temporary prefix; the public header includes nothing but
#      the standard library;
#   2. build embedded_service/ with nothing but -DCMAKE_PREFIX_PATH=<prefix> (find_package(Spillway)),
#      and the same source with the pkg-config flags alone;
#   3. a wrong pipeline name and a broken pipeline file come back as spillway::embed::Error, named;
#   4. the service publishes through a mock Kafka cluster (tools/mock-kafka) while it is up, down
#      and up again, with plugins found beside the installed library, and an independent reader
#      (kcat) finds every accepted event, each customer's first deliveries in publish order.
# The temporary folder is removed on success and kept (and named) on failure.
set -euo pipefail

build=$1
src=$2
flags=${3:-}
cmake=${CMAKE:-cmake}
cxx=${CXX:-c++}
lib=${LIBDIR:-lib}  # CMAKE_INSTALL_LIBDIR: lib/x86_64-linux-gnu for a /usr prefix
work="$(mktemp -d /tmp/spillway-embedded.XXXXXX)"
prefix="$work/prefix"
kafka_pid=""
service_pid=""

finish() {
  local rc=$?
  if [ -n "$service_pid" ]; then kill "$service_pid" 2>/dev/null || true; wait "$service_pid" 2>/dev/null || true; fi
  if [ -n "$kafka_pid" ]; then echo quit >&7 2>/dev/null || true; wait "$kafka_pid" 2>/dev/null || true; fi
  if [ $rc -eq 0 ]; then rm -rf "$work"; else echo "embedded service FAILED (exit $rc); files kept in $work" >&2; fi
}
trap finish EXIT
step() { printf '\n=== [%3ss] %s\n' "$SECONDS" "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

step "install $build into $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log" >&2; fail "cmake --install"; }
libdir="$prefix/$lib"
[ -e "$libdir/libspillway-engine.so.1" ] || fail "the install has no $lib/libspillway-engine.so.1"
for f in include/spillway/engine.hpp $lib/cmake/Spillway/SpillwayConfig.cmake \
         $lib/cmake/Spillway/SpillwayConfigVersion.cmake $lib/pkgconfig/spillway-engine.pc; do
  [ -e "$prefix/$f" ] || fail "the install has no $f"
done
[ -L "$libdir/libspillway-engine.so" ] || fail "the install has no libspillway-engine.so link for the linker"
readelf -d "$libdir/libspillway-engine.so.1" | grep -q 'SONAME.*libspillway-engine.so.1' || fail "the library's SONAME is not libspillway-engine.so.1"
# Only the API leaves the library: no engine internals, no toml++/SOCI/librdkafka/spdlog symbols.
leaked="$(nm -D --defined-only -C "$libdir/libspillway-engine.so.1" | awk '$2 ~ /^[TWVBDR]$/' |
          grep -v ' spillway::embed::' | grep -Ev ' (typeinfo|typeinfo name|vtable) for spillway::embed::' |
          grep -v ' SPILLWAY_ENGINE_1$' || true)"
[ -z "$leaked" ] || { echo "$leaked" | head -n 20 >&2; fail "the library exports more than spillway::embed"; }
echo "exports: $(nm -D --defined-only "$libdir/libspillway-engine.so.1" | grep -c ' [TWV] ') symbols, all spillway::embed"
# The header needs only the C++ standard library.
others="$(grep -E '^#include' "$prefix/include/spillway/engine.hpp" | grep -Ev '^#include <[a-z_]+>$' || true)"
[ -z "$others" ] || fail "spillway/engine.hpp includes more than the standard library: $others"

step "build the service against the installed package (find_package(Spillway))"
cfg=(-S "$src" -B "$work/service" -DCMAKE_PREFIX_PATH="$prefix")
if [ -n "$flags" ]; then
  # A sanitized build installs a sanitized library; build the service the same way.
  cfg+=(-DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags")
fi
"$cmake" "${cfg[@]}" >"$work/configure.log" 2>&1 || { cat "$work/configure.log" >&2; fail "configure"; }
grep -q "Spillway_DIR:PATH=$prefix" "$work/service/CMakeCache.txt" || fail "Spillway was not found in the prefix"
"$cmake" --build "$work/service" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "build"; }
if grep -i "warning:" "$work/build.log"; then fail "the service builds with warnings"; fi
service="$work/service/order-service"

step "build it again with the pkg-config flags alone"
pc="$(PKG_CONFIG_PATH="$prefix/$lib/pkgconfig" pkg-config --cflags --libs spillway-engine)"
rpath="$(PKG_CONFIG_PATH="$prefix/$lib/pkgconfig" pkg-config --variable=libdir spillway-engine)"
echo "pkg-config --cflags --libs spillway-engine: $pc"
# shellcheck disable=SC2086
"$cxx" -std=c++20 -Wall -Wextra -Wpedantic -Werror $flags "$src/service.cpp" $pc -Wl,-rpath,"$rpath" -o "$work/order-service-pc"

step "errors come back named"
cat >"$work/broken.toml" <<'TOML'
[pipeline.orders]
sink = "nowhere"
TOML
rc=0; "$work/order-service-pc" "$work/broken.toml" orders </dev/null 2>"$work/broken.err" || rc=$?
cat "$work/broken.err"
[ $rc -eq 1 ] || fail "a broken pipeline file: exit $rc, expected 1"
grep -q "broken.toml:2:" "$work/broken.err" || fail "the error does not name broken.toml:2:col"

step "start a mock Kafka cluster"
mkfifo "$work/kafka.cmd"
"$build/bin/mock-kafka" --brokers 1 --exit-on-eof <"$work/kafka.cmd" >"$work/kafka.out" 2>"$work/kafka.log" &
kafka_pid=$!
exec 7>"$work/kafka.cmd"
for _ in $(seq 1 100); do grep -q '^bootstrap.servers=' "$work/kafka.out" && break; sleep 0.1; done
brokers="$(sed -n 's/^bootstrap.servers=//p' "$work/kafka.out")"
[ -n "$brokers" ] || fail "mock-kafka printed no bootstrap.servers"

# No plugin_path and no SPILLWAY_PLUGIN_PATH: the engine finds the plugins beside the library.
cat >"$work/orders.toml" <<TOML
[engine]
http_listen = "127.0.0.1:0"

[sink.kafka]
plugin = "kafka"
"bootstrap.servers" = "$brokers"
"message.timeout.ms" = "500"

[store.outbox]
plugin = "sqlite"
path = "$work/outbox.db"

[notifier.doorbell]
plugin = "inproc"

[scheduler.poll]
plugin = "adaptive"

[pipeline.orders]
sink = "kafka"
store = "outbox"
notifier = "doorbell"
scheduler = "poll"
mode = "direct-first"
topic = "orders.events"
direct_timeout = "500ms"
TOML

rc=0; env -u SPILLWAY_PLUGIN_PATH "$service" "$work/orders.toml" invoices </dev/null 2>"$work/name.err" || rc=$?
cat "$work/name.err"
[ $rc -eq 1 ] && grep -q "no pipeline named 'invoices' (the file has: orders)" "$work/name.err" ||
  fail "a wrong pipeline name: exit $rc, without the error naming the pipelines there are"

step "the service publishes with Kafka up, down and up again"
mkfifo "$work/service.in"
env -u SPILLWAY_PLUGIN_PATH "$service" "$work/orders.toml" orders <"$work/service.in" >"$work/service.out" 2>"$work/service.err" &
service_pid=$!
exec 8>"$work/service.in"
answers=0
ask() {  # <command>: sends it, waits for the service's next line (60 s at most) into $a
  echo "$1" >&8
  answers=$((answers + 1))
  local deadline=$((SECONDS + 60))
  until [ "$(wc -l <"$work/service.out")" -gt "$answers" ]; do
    # Gone: its last line may have come just before it exited (after quit, it does exit).
    if ! kill -0 "$service_pid" 2>/dev/null; then
      [ "$(wc -l <"$work/service.out")" -gt "$answers" ] && break
      cat "$work/service.err" >&2; fail "the service exited during '$1'"
    fi
    [ $SECONDS -lt $deadline ] || { cat "$work/service.err" >&2; fail "no answer to '$1' within 60 s"; }
    sleep 0.05
  done
  a="$(sed -n "$((answers + 1))p" "$work/service.out")"
}
deadline=$((SECONDS + 60))
until [ -s "$work/service.out" ]; do
  kill -0 "$service_pid" 2>/dev/null || { cat "$work/service.err" >&2; fail "the service did not start"; }
  [ $SECONDS -lt $deadline ] || fail "the service did not say ready within 60 s"
  sleep 0.05
done
ready="$(head -n 1 "$work/service.out")"
echo "$ready"
port="$(sed -n 's/.*http_port=\([0-9]*\).*/\1/p' <<<"$ready")"
[ -n "$port" ] && [ "$port" -gt 0 ] || fail "no HTTP listener on port 0's bound port: $ready"
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || fail "the embedded engine's /readyz does not answer"

accepted=0
count() {  # <answer> <field>
  sed -n "s/.*$2=\([0-9]*\).*/\1/p" <<<"$1"
}
expect_accepted() {  # <answer> <events>: all accepted; adds them up
  local direct outbox refused
  direct="$(count "$1" direct)"; outbox="$(count "$1" outbox)"; refused="$(count "$1" refused)"
  [ "$refused" = 0 ] || { cat "$work/service.err" >&2; fail "refused events: $1"; }
  [ $((direct + outbox)) -eq "$2" ] || fail "expected $2 accepted: $1"
  accepted=$((accepted + direct + outbox))
}

ask 'publish 10'; echo "Kafka up:   publish 10 rounds -> $a"; expect_accepted "$a" 50
[ "$(count "$a" direct)" -gt 0 ] || fail "nothing went direct with Kafka up"
echo downall >&7
ask 'publish 6'; echo "Kafka down: publish 6 rounds  -> $a"; expect_accepted "$a" 30
[ "$(count "$a" outbox)" -gt 0 ] || fail "nothing spilled to the outbox with Kafka down"
ask 'batch 40'; echo "Kafka down: batch of 40       -> $a"; expect_accepted "$a" 40
echo upall >&7
ask 'drain'; echo "Kafka up:   drain             -> $a"; [ "$a" = drained ] || fail "the outbox did not drain: $a"
ask 'publish 4'; echo "Kafka up:   publish 4 rounds  -> $a"; expect_accepted "$a" 20
ask 'batch 10'; echo "Kafka up:   batch of 10       -> $a"; expect_accepted "$a" 10
ask 'quit'; echo "quit -> $a"
[ "$a" = "stopped late=stopping" ] || fail "after stop(), a publish is not refused as stopping: $a"
rc=0; wait "$service_pid" || rc=$?
service_pid=""
[ $rc -eq 0 ] || { cat "$work/service.err" >&2; fail "the service exited $rc"; }

step "an independent reader finds every accepted event, in order per customer"
python3 - "$brokers" "$accepted" <<'PY'
import json, subprocess, sys, time
brokers, accepted = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 60
while True:
    out = subprocess.run(["kcat", "-b", brokers, "-C", "-t", "orders.events", "-e", "-q", "-f", "%s\n"],
                         capture_output=True, text=True, timeout=60).stdout
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    first = {}
    for r in records:
        first.setdefault(r["customer"], [])
        if r["seq"] not in first[r["customer"]]:
            first[r["customer"]].append(r["seq"])
    unique = sum(len(v) for v in first.values())
    if unique >= accepted or time.time() > deadline:
        break
    time.sleep(0.2)
lost = accepted - unique
reordered = [c for c, seqs in first.items() if seqs != sorted(seqs) or seqs != list(range(1, len(seqs) + 1))]
print(f"records {len(records)}, distinct events {unique} of {accepted} accepted, duplicates {len(records) - unique}, "
      f"customers out of order {reordered or 'none'}")
sys.exit(1 if lost or reordered else 0)
PY
