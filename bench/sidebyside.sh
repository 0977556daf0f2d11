#!/usr/bin/env bash
# rolefsm beside hashicorp/raft at rest, on real processes: 3 rolefsm
# node processes with N channels against 3 raft processes with N groups,
# both sides every round, the order alternating, medians; CPU of the 3
# processes and RSS per process. bench/peers/sidebyside is the driver
# (the peers live in bench/peers' own module); its flags pass through:
#
#   bash bench/sidebyside.sh                      # what bench/recorded/sidebyside.txt holds
#   bash bench/sidebyside.sh -n 1 -rounds 1 -measure 2s   # a quick look (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/rolefsm" ./cmd/rolefsm
(cd bench/peers && go build -o "$bin/raftnode" ./raftnode)
go run ./bench/peers/sidebyside -rolefsm "$bin/rolefsm" -raftnode "$bin/raftnode" "$@"
