#!/usr/bin/env bash
# The quickstart: Spillway with no servers at all. A Kafka-protocol mock broker (librdkafka's mock
# cluster, tools/mock-kafka) stands in for Kafka, SQLite is the outbox, the doorbell is in-process.
# It publishes over HTTP, takes Kafka down for a few seconds and back (with the relay paused over
# the return, as an operator might during an incident), and shows what happened.
# Usage: tools/quickstart.sh BUILD_DIR   (tools/dev quickstart builds first, then runs this)
# QUICKSTART_METRICS_DIR=dir saves a /metrics scrape per step (start, up, down, paused, drained,
# after) as dir/<step>.prom: tests/deploy/check_panels_move.py checks every dashboard panel moves.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$ROOT/build}"
BIN="$BUILD/bin"
WORK="$(mktemp -d /tmp/spillway-quickstart.XXXXXX)"
PORT="${QUICKSTART_PORT:-18080}"
URL="http://127.0.0.1:$PORT"
PIPE="essays"
N=25

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
cleanup() {
  [ -n "${ENGINE_PID:-}" ] && kill -TERM "$ENGINE_PID" 2>/dev/null && wait "$ENGINE_PID" 2>/dev/null || true
  [ -n "${KAFKA_PID:-}" ] && { echo quit >&7; wait "$KAFKA_PID" 2>/dev/null || true; }
  [ -n "${QUICKSTART_KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

# Wait for a condition, at most $1 seconds (this is a demo script, not a test).
until_true() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.1
  done
}

say "starting a mock Kafka broker (tools/mock-kafka)"
mkfifo "$WORK/kafka.cmd"
"$BIN/mock-kafka" --brokers 1 --exit-on-eof <"$WORK/kafka.cmd" >"$WORK/kafka.out" 2>"$WORK/kafka.log" &
KAFKA_PID=$!
exec 7>"$WORK/kafka.cmd"
until_true 10 grep -q '^bootstrap.servers=' "$WORK/kafka.out"
BROKERS="$(sed -n 's/^bootstrap.servers=//p' "$WORK/kafka.out")"
echo "    bootstrap.servers=$BROKERS"

say "starting: spillway run configs/quickstart.toml (SQLite outbox, inproc doorbell, HTTP on $URL)"
KAFKA_BROKERS="$BROKERS" SPILLWAY_HTTP="127.0.0.1:$PORT" SPILLWAY_OUTBOX_PATH="$WORK/outbox.db" \
  SPILLWAY_PLUGIN_PATH="$BUILD/plugins" \
  "$BIN/spillway" run "$ROOT/configs/quickstart.toml" --env development >"$WORK/engine.log" 2>&1 &
ENGINE_PID=$!
if ! until_true 30 curl -sf "$URL/readyz" -o /dev/null; then
  cat "$WORK/engine.log"; echo "quickstart: the engine did not become ready" >&2; exit 1
fi
scrape() { [ -z "${QUICKSTART_METRICS_DIR:-}" ] || curl -sf "$URL/metrics" -o "$QUICKSTART_METRICS_DIR/$1.prom"; }
scrape start

# publish PHASE COUNT: one POST per event; records path and latency per event, and the event_id
# of each accepted one.
touch "$WORK/accepted"
publish() {
  local phase=$1 count=$2 i out
  for i in $(seq 1 "$count"); do
    out="$(curl -s -w ' %{http_code} %{time_total}' -H 'Content-Type: application/json' \
      -d "{\"key\":\"essay-$((i % 5))\",\"payload\":{\"phase\":\"$phase\",\"n\":$i},\"event_type\":\"EssaySubmitted\"}" \
      "$URL/v1/pipelines/$PIPE/events")"
    local path code secs id
    path="$(grep -o '"path":"[a-z]*"' <<<"$out" | head -1 | cut -d'"' -f4)"
    id="$(grep -o '"event_id":"[^"]*"' <<<"$out" | head -1 | cut -d'"' -f4)"
    code="$(tail -n1 <<<"$out" | awk '{print $(NF-1)}')"
    secs="$(tail -n1 <<<"$out" | awk '{print $NF}')"
    echo "$phase ${path:-refused} $code $secs" >>"$WORK/results"
    if [ -n "$path" ] && [ "$path" != refused ]; then echo "$id" >>"$WORK/accepted"; fi
  done
}

say "publishing $N events with Kafka up"
publish up "$N"
echo "    and one that names a topic no Kafka could have; it is refused, not stored:"
curl -s -H 'Content-Type: application/json' -d '{"topic":"no such topic!","payload":{}}' \
  -w ' (HTTP %{http_code})\n' "$URL/v1/pipelines/$PIPE/events" | sed 's/^/    /'
scrape up
say "taking Kafka down (mock-kafka: downall) and publishing $N more"
echo downall >&7
publish down "$N"
pending() { curl -s "$URL/v1/pipelines/$PIPE" | grep -o '"pending":[0-9-]*' | head -1 | cut -d: -f2; }
echo "    outbox pending while Kafka is down: $(pending)"
scrape down
say "pausing the relay (POST /v1/pipelines/$PIPE/pause) and bringing Kafka back (upall)"
curl -sf -X POST "$URL/v1/pipelines/$PIPE/pause" -o /dev/null
echo upall >&7
echo "    Kafka is back; with the relay paused nothing leaves the outbox: pending $(pending)"
scrape paused
say "resuming the relay (POST /v1/pipelines/$PIPE/resume); it drains the outbox"
T0=$SECONDS
curl -sf -X POST "$URL/v1/pipelines/$PIPE/resume" -o /dev/null
drained() { [ "$(pending)" = 0 ]; }
until_true 30 drained || echo "    (still pending after 30 s: $(pending))"
DRAIN=$((SECONDS - T0))
scrape drained
publish after "$N"
scrape after

say "what happened"
printf '%-8s %7s %7s %8s %12s %12s\n' phase direct outbox refused "p50 (ms)" "max (ms)"
for phase in up down after; do
  # Sorted by latency, so the middle line is the median and the last the maximum.
  grep "^$phase " "$WORK/results" | sort -g -k4 | awk -v p="$phase" '
    {n++; if ($2=="direct") d++; else if ($2=="outbox") o++; else r++; t[n]=$4*1000}
    END {printf "%-8s %7d %7d %8d %12.1f %12.1f\n", p, d, o, r, t[int((n+1)/2)], t[n]}'
done
echo "outbox drained within ~${DRAIN}s of the resume; pending now: $(pending)"
# What Kafka holds, read back with kcat: each record's event_id header against the ids the engine
# answered "accepted" with.
kcat -b "$BROKERS" -C -t essays.events -e -q -f '%h\n' 2>/dev/null |
  grep -o 'event_id=[^,]*' | cut -d= -f2 >"$WORK/records" || true
ACCEPTED="$(sort -u "$WORK/accepted" | wc -l)"
RECORDS="$(wc -l <"$WORK/records")"
DELIVERED="$(sort -u "$WORK/records" | comm -12 - <(sort -u "$WORK/accepted") | wc -l)"
DUPLICATES=$((RECORDS - $(sort -u "$WORK/records" | wc -l)))
LOST=$((ACCEPTED - DELIVERED))
echo "Kafka (topic essays.events, read back with kcat): $RECORDS records"
echo "  delivered:  $DELIVERED of the $ACCEPTED events Spillway accepted; lost: $LOST"
if [ "$DUPLICATES" -gt 0 ]; then
  REPEATED="$(sort "$WORK/records" | uniq -d | wc -l)"
  echo "  duplicates: $DUPLICATES extra copies, of $REPEATED event(s). When Kafka went down, Spillway had"
  echo "              already handed them to the Kafka client; it stored them in the outbox too rather"
  echo "              than wait, and when Kafka came back both the client and the outbox sent them."
  echo "              That is the contract: at least once, never lost. Consumers drop a repeat by its"
  echo "              event_id header (docs/clients.md)."
else
  echo "  duplicates: none this time. After an outage there can be some (an event the Kafka client"
  echo "              still held is also sent from the outbox); consumers drop a repeat by its"
  echo "              event_id header (docs/clients.md)."
fi
echo
echo "Look for yourself while it runs (start it again with: tools/dev quickstart):"
echo "  curl -s $URL/v1/pipelines/$PIPE           # circuit, pending, dead, poll interval"
echo "  curl -s $URL/metrics | grep spillway_     # Prometheus metrics"
echo "  kcat -b $BROKERS -C -t essays.events -f '%k %h %s\n'   # records with their event_id header"
grep -E "circuit|Kafka" "$WORK/engine.log" | tail -6 | sed 's/^/  log: /'
if [ "$LOST" -ne 0 ]; then
  echo "quickstart: FAILED: $LOST accepted event(s) are not in Kafka" >&2
  exit 1
fi
