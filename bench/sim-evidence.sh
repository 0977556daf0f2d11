#!/usr/bin/env bash
# Today's rule (each Replica's own silence) beside the replica set's
# evidence, under the simulator's loss faults (50-100% of the heartbeats
# on one directed link lost for a while), across cluster sizes, miss
# thresholds and intervals: thrash (stands but a node's first), dual-
# leader steps per run, and violating seeds, 1000 seeds a cell.
#
#   bash bench/sim-evidence.sh [SEEDS] [FAULTS]   (default 1000 loss)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-1000}
faults=${2:-loss}
bin=$(mktemp -d)/rolefsm
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/rolefsm

echo "faults: $faults, $seeds seeds a cell, -policy tail"
printf '%-6s %-5s %-10s %10s %10s %10s %10s %8s %8s\n' nodes miss heartbeat thrash/own thrash/peers dual/own dual/peers viol/own viol/peers
for nodes in 3 5 9; do
  for miss in 2 3; do
    for hb in 100ms 500ms; do
      out=$("$bin" sim -sweep "$seeds" -faults "$faults" -nodes "$nodes" -miss "$miss" -heartbeat "$hb" -policy tail -evidence own,peers 2>/dev/null || true)
      read -r _ _ _ to tp < <(grep '^thrash per run' <<<"$out")
      read -r _ _ _ _ do dp < <(grep '^dual-leader steps per run' <<<"$out")
      read -r _ _ vo vp < <(grep '^violating seeds' <<<"$out")
      printf '%-6s %-5s %-10s %10s %10s %10s %10s %8s %8s\n' "$nodes" "$miss" "$hb" "$to" "$tp" "$do" "$dp" "$vo" "$vp"
    done
  done
done
