#!/usr/bin/env bash
# Builds spillway-bench (Release) and runs every scenario; the bench starts the servers it needs
# itself (PostgreSQL 15 with default durability, Redis, librdkafka's mock cluster) on loopback.
# Results: a table per scenario on stdout, JSON in var/bench/ (one file per scenario + summary.json).
#
#   tools/bench/run.sh                       # everything, defaults (a few minutes)
#   tools/bench/run.sh --scenario direct --samples 5000
#   BUILD_DIR=/tmp/b tools/bench/run.sh --all --idle-seconds 10
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$root/build-bench}"
out="${OUT_DIR:-$root/var/bench}"
# A new tree is configured Release; an existing one (BUILD_DIR=build) keeps its build type, so
# pointing the bench at the developer's tree does not rebuild all of it.
if [ -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" >/dev/null
else
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j"${JOBS:-2}" --target spillway-bench
mkdir -p "$out"
echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$#" -eq 0 ]; then set -- --all; fi
"$build/bin/spillway-bench" --out-dir "$out" "$@" | tee "$out/report.txt"
