#!/usr/bin/env bash
# Where the roles stop converging: sweeps the simulator over cluster size,
# miss threshold and heartbeat interval, every fault kind, under the
# highest-tail election with the replica set's evidence (tail) and with
# each node's own silence (tail/own, upstream's rule), and under
# upstream's election and rule (upstream), and prints the number of
# violating seeds of each sweep.
#
#   bash bench/sim-grid.sh [SEEDS]     (default 1000 seeds a cell)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-1000}
bin=$(mktemp -d)/rolefsm
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/rolefsm

printf '%-6s %-5s %-10s %14s %14s %14s\n' nodes miss heartbeat "tail" "tail/own" "upstream"
for nodes in 3 5 9; do
  for miss in 1 2 3; do
    for hb in 100ms 500ms; do
      row=$(printf '%-6s %-5s %-10s' "$nodes" "$miss" "$hb")
      # exit 1 means violations: the table below reports them.
      out=$("$bin" sim -sweep "$seeds" -nodes "$nodes" -miss "$miss" -heartbeat "$hb" -policy tail -evidence peers,own 2>/dev/null || true)
      read -r _ _ t o < <(grep '^violating seeds' <<<"$out")
      out=$("$bin" sim -sweep "$seeds" -nodes "$nodes" -miss "$miss" -heartbeat "$hb" -policy upstream 2>/dev/null || true)
      read -r _ _ u < <(grep '^violating seeds' <<<"$out")
      printf '%s %14s %14s %14s\n' "$row" "$t/$seeds" "$o/$seeds" "$u/$seeds"
    done
  done
done
