#!/usr/bin/env bash
# tests/external/round_trip.sh <build dir> <file_sink source dir> [extra compiler flags]
#
# The plugin author's round trip, against an installed Spillway only:
#   1. cmake --install the build into a temporary prefix;
#   2. configure file_sink/ with nothing but -DCMAKE_PREFIX_PATH=<prefix> (find_package(SpillwaySDK)),
#      build it, and run its testkit tests;
#   3. compile the C example with the pkg-config flags alone (the C ABI needs no C++);
#   4. the installed `spillway plugins` lists the examples (and, by default, the installed plugins), `spillway validate` accepts a config
#      using them (and refuses one without its required option, naming it), and `spillway run`
#      publishes an event through the C transform and the sink into its file.
# The temporary folder is removed on success and kept (and named) on failure.
set -euo pipefail

build=$1
src=$2
flags=${3:-}
jobs=2
cmake=${CMAKE:-cmake}  # CTest passes the cmake that configured the build
lib=${LIBDIR:-lib}     # and CMAKE_INSTALL_LIBDIR: lib/x86_64-linux-gnu for a /usr prefix
work="$(mktemp -d /tmp/spillway-round-trip.XXXXXX)"
prefix="$work/prefix"
ext="$work/file_sink"
engine_pid=""
dest_pid=""

finish() {
  local rc=$?
  if [ -n "$engine_pid" ]; then kill "$engine_pid" 2>/dev/null || true; wait "$engine_pid" 2>/dev/null || true; fi
  if [ -n "$dest_pid" ]; then kill "$dest_pid" 2>/dev/null || true; fi
  if [ $rc -eq 0 ]; then rm -rf "$work"; else echo "round trip FAILED (exit $rc); files kept in $work" >&2; fi
}
trap finish EXIT
step() { printf '\n=== [%3ss] %s\n' "$SECONDS" "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

step "install $build into $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log" >&2; fail "cmake --install"; }
for f in include/spillway/plugin.h include/spillway/sdk.hpp include/spillway/testkit/host.hpp \
         include/spillway/testkit/sink_suite.hpp $lib/libspillway-testkit.a \
         $lib/cmake/SpillwaySDK/SpillwaySDKConfig.cmake $lib/pkgconfig/spillway-sdk.pc bin/spillway \
         share/doc/spillway/sdk/README.md share/doc/spillway/configs/README.md \
         share/doc/spillway/configs/examples/sqlite-single-node.toml; do
  [ -e "$prefix/$f" ] || fail "the install has no $f"
done
# The pipeline config below uses these next to the example (SPILLWAY_PLUGINS must include them).
for p in sqlite inproc adaptive; do
  [ -e "$prefix/$lib/spillway/plugins/spillway-$p.so" ] || fail "the install has no $p plugin (is it in SPILLWAY_PLUGINS?)"
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
cflags="$(PKG_CONFIG_PATH="$prefix/$lib/pkgconfig" pkg-config --cflags spillway-sdk)"
echo "pkg-config --cflags spillway-sdk: $cflags"
# shellcheck disable=SC2086
"${CC:-cc}" -std=c11 -Wall -Wextra -Wpedantic -Werror -fPIC -shared $flags $cflags -o "$work/spillway-cfile.so" "$src/file_sink.c"

spillway="$prefix/bin/spillway"
step "the installed engine lists the example plugin"
"$spillway" plugins --plugin-path "$ext" | tee "$work/plugins.txt"
grep -Eq "^sink +file +1\.0\.0" "$work/plugins.txt" || fail "spillway plugins does not list the file sink"
grep -Eq "^sink +cfile +1\.0\.0" "$work/plugins.txt" || fail "spillway plugins does not list the C file sink"
grep -Eq "^transform +stamp +1\.0\.0 +1\.2 " "$work/plugins.txt" || fail "spillway plugins does not list the C transform with ABI 1.2"

step "the installed engine finds its own plugins by default"
env -u SPILLWAY_PLUGIN_PATH "$spillway" plugins | tee "$work/plugins-default.txt"
grep -q " $prefix/$lib/spillway/plugins/spillway-sqlite.so" "$work/plugins-default.txt" ||
  fail "spillway plugins does not search $prefix/$lib/spillway/plugins by default"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
start_engine() {  # <config> <log>: `spillway run` in the background, until /healthz answers
  "$spillway" run "$1" --env testing >"$2" 2>&1 &
  engine_pid=$!
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$engine_pid" 2>/dev/null || { cat "$2" >&2; fail "spillway run $1 exited"; }
    sleep 0.1
  done
  fail "spillway run $1 did not answer /healthz within 30 s"
}
write_config() {  # <file> <sink table body>
  cat >"$1" <<TOML
[engine]
plugin_path = ["$prefix/$lib/spillway/plugins", "$ext/spillway-file.so", "$ext/spillway-stamp.so"]
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
transforms = ["stamp"]

[transform.stamp]
plugin = "stamp"
value = "round-trip"
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

step "the guide's minimal pipeline (sdk/README.md) validates as shown"
readme="$(dirname "$0")/../../sdk/README.md"
python3 - "$readme" >"$work/guide.toml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
section = text.split("## Loading it in the engine", 1)[1]
print(re.search(r"```toml\n(.*?)```", section, re.S).group(1), end="")
PY
sed -i -e "s|/usr/local/lib/spillway/plugins|$prefix/$lib/spillway/plugins|" -e "s|/opt/my-plugins|$ext|" \
       -e "s|/var/lib/spillway|$work|" "$work/guide.toml"
"$spillway" validate "$work/guide.toml" --env testing >"$work/validate-guide.txt" 2>&1 ||
  { cat "$work/guide.toml" "$work/validate-guide.txt" >&2; fail "validate of the guide's pipeline"; }
echo "validate the guide's pipeline: ok"

step "the installed engine publishes through it"
start_engine "$work/good.toml" "$work/run.log"
reply="$(curl -sS -X POST -H 'Content-Type: application/json' \
  --data '{"key":"customer-7","payload":{"order":42}}' "http://127.0.0.1:$port/v1/pipelines/orders/events")"
echo "publish: $reply"
echo "$reply" | grep -q '"path":"direct"' || { cat "$work/run.log" >&2; fail "the event did not go direct through the file sink"; }
grep -q '"topic":"orders.events","key":"customer-7"' "$work/events.jsonl" || fail "the event is not in the sink's file"
grep -q '\["stamp","round-trip"\]' "$work/events.jsonl" || fail "the out-of-tree transform did not stamp the event"
cat "$work/events.jsonl"
kill -TERM "$engine_pid"
rc=0; wait "$engine_pid" || rc=$?
engine_pid=""
[ $rc -eq 0 ] || { cat "$work/run.log" >&2; fail "spillway run exited $rc on SIGTERM"; }

step "a sink that knows its destination only from its sends recovers without a restart"
# The webhook example says DOWN after a failed send and never looks at its destination by itself:
# the engine's trial send (plugin.h, "the health contract") is what brings it back.
dest_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
sed -e "s|^plugin = \"file\"|plugin = \"webhook\"|" \
    -e "s|^path = \"$work/events.jsonl\"|url = \"http://127.0.0.1:$dest_port/hook\"|" \
    -e "s|$ext/spillway-file.so|$ext/spillway-webhook.so|" \
    -e "s|$work/outbox.db|$work/webhook-outbox.db|" "$work/good.toml" >"$work/webhook.toml"
grep -q 'plugin = "webhook"' "$work/webhook.toml" || fail "could not write webhook.toml"
start_engine "$work/webhook.toml" "$work/run-webhook.log"
# The destination is down: each event is accepted into the outbox. Causal per key: a key's next
# event only after the previous one was accepted.
rounds=10
for i in $(seq 1 $rounds); do
  for k in a b c; do
    reply="$(curl -sS -X POST -H 'Content-Type: application/json' \
      --data "{\"key\":\"$k\",\"payload\":{\"seq\":$i}}" "http://127.0.0.1:$port/v1/pipelines/orders/events")"
    echo "$reply" | grep -q '"path":"outbox"' || { cat "$work/run-webhook.log" >&2; fail "event $k/$i: $reply"; }
  done
done
pending() { curl -fsS "http://127.0.0.1:$port/v1/pipelines/orders" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"])'; }
[ "$(pending)" = "$((rounds * 3))" ] || fail "expected $((rounds * 3)) pending events, found $(pending)"
python3 "$(dirname "$0")/webhook_destination.py" "$dest_port" "$work/hook.txt" &
dest_pid=$!
back=$(date +%s%N)
drained=""
for _ in $(seq 1 600); do  # 60 s at most
  if [ "$(pending)" = "0" ]; then drained=$(date +%s%N); break; fi
  sleep 0.1
done
[ -n "$drained" ] || { cat "$work/run-webhook.log" >&2; fail "the outbox did not drain after the destination came back"; }
# Every event arrived, each key's in the order it was accepted (a repeat, if any, only in place).
python3 - "$work/hook.txt" "$rounds" <<'PY' || fail "the destination did not get every event in order per key"
import json, sys
seqs = {}
for line in open(sys.argv[1]):
    key, body = line.rstrip("\n").split(" ", 1)
    s = seqs.setdefault(key, [])
    n = json.loads(body)["seq"]
    if not s or s[-1] != n:
        s.append(n)
want = list(range(1, int(sys.argv[2]) + 1))
bad = {k: v for k, v in seqs.items() if v != want}
if sorted(seqs) != ["a", "b", "c"] or bad:
    print("per-key sequences:", seqs)
    sys.exit(1)
PY
echo "send-only sink: $((rounds * 3)) events drained $(( (drained - back) / 1000000 )) ms after the destination came up," \
     "no restart; webhook_sink.cpp is $(wc -l <"$src/webhook_sink.cpp") lines"
kill -TERM "$engine_pid"
rc=0; wait "$engine_pid" || rc=$?
engine_pid=""
kill "$dest_pid" 2>/dev/null || true
dest_pid=""
[ $rc -eq 0 ] || { cat "$work/run-webhook.log" >&2; fail "spillway run (webhook) exited $rc on SIGTERM"; }

step "round trip passed"
