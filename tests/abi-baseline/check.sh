#!/usr/bin/env bash
# tests/abi-baseline/check.sh <example plugin .so> <abi surface .so> [<libspillway-engine.so>]
#
# The ABI freeze: abidw each built object and abidiff it against the stored baseline
# (<name>.abi next to this script): the plugin ABI (1.2 since store.hold; the transform kind added
# to it), and the embedded C++ API of libspillway-engine.so.1 (spillway/engine.hpp, API 1.0). Any difference fails with abidiff's report, which names the
# changed type, member, offset or signature. Exit 77 (CTest: skipped) only when abigail-tools is
# not installed (Debian: apt-get install abigail-tools; tools/dev setup does it).
#
# An intended change (a new SW_ABI_MINOR with slots appended) refreshes the baseline deliberately:
#   tests/abi-baseline/check.sh --update <plugin .so> <surface .so> [<engine .so>]
# and the diff of the .abi files goes through review with the header change.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
update=0
if [ "${1:-}" = "--update" ]; then update=1; shift; fi
if [ $# -ne 2 ] && [ $# -ne 3 ]; then
  echo "usage: $0 [--update] <example plugin .so> <abi surface .so> [<libspillway-engine.so>]" >&2
  exit 2
fi
if ! command -v abidw >/dev/null || ! command -v abidiff >/dev/null; then
  echo "SKIPPED: abidw/abidiff not found; install abigail-tools (tools/dev setup) to check the ABI freeze" >&2
  exit 77
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

status=0
check() {  # <name> <built object> [abidw options]
  local name=$1 built=$2 baseline="$here/$1.abi"
  shift 2
  # No paths or line numbers: the baseline must not depend on where the tree was built.
  abidw --exported-interfaces-only --no-corpus-path --no-comp-dir-path --no-show-locs "$@" --out-file "$work/$name.abi" "$built"
  if [ $update -eq 1 ]; then
    cp "$work/$name.abi" "$baseline"
    echo "updated $baseline"
    return
  fi
  if [ ! -f "$baseline" ]; then
    echo "FAIL: no baseline $baseline (create it with --update)" >&2
    status=1
    return
  fi
  local rc=0
  abidiff --no-unreferenced-symbols "$baseline" "$work/$name.abi" >"$work/$name.diff" 2>&1 || rc=$?
  if [ $rc -eq 0 ]; then
    echo "ok: $name matches the stored ABI baseline"
  else
    # abidiff's exit code is a bit set: 1 error, 2 usage, 4 ABI change, 8 incompatible change.
    echo "FAIL: $name differs from the stored ABI baseline (abidiff exit $rc):" >&2
    cat "$work/$name.diff" >&2
    echo "If the change is intended (slots appended and SW_ABI_MINOR bumped; for the engine API, a new" >&2
    echo "function, or SPILLWAY_ENGINE_API_MAJOR and the SOVERSION bumped), refresh the baseline with" >&2
    echo "  $here/check.sh --update <plugin .so> <surface .so> [<engine .so>]   and have the .abi diff reviewed." >&2
    status=1
  fi
}

check file_sink "$1"
check plugin_h "$2"
# The public header's types only (the engine's own classes inside the library are not the API).
[ $# -eq 3 ] && check engine_api "$3" --headers-dir "$here/../../engine/include" --drop-private-types
exit $status
