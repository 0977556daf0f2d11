#!/usr/bin/env bash
# A node with many channels on real processes: 5 rolefsm node processes
# on 127.0.0.1 (so each node has 4 peers), 10,000 channels each, 500 ms
# heartbeat, for 30 s; prints each node's CPU (from /proc) and its
# datagrams and bytes per peer per interval (from /metrics). The driver
# is bench/failover/main.go; its flags pass through:
#
#   bash bench/steady.sh                              # what bench/recorded/steady.txt holds
#   bash bench/steady.sh -steady-channels 100000      # a bigger node
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/rolefsm
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/rolefsm
go run ./bench/failover -bin "$bin" -nodes 5 -kills 0 -steady 30s -steady-channels 10000 "$@"
