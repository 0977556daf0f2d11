#!/usr/bin/env bash
# Faults on real processes: 3 rolefsm node processes on loopback behind
# a UDP fault proxy (rolefsmtest/udpproxy), each fault under each
# evidence rule (own: each node's own silence, upstream's rule; peers:
# the replica set's reports), several runs each, medians.
# bench/faults/main.go is the driver; its flags pass through:
#
#   bash bench/faults.sh                              # what bench/recorded/faults.txt holds
#   bash bench/faults.sh -runs 1 -loss-for 10s        # a quick look
#   bash bench/faults.sh -scenarios cut -check        # CI: the cut's margin holds
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/rolefsm
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/rolefsm
go run ./bench/faults -bin "$bin" -nodes 3 -channels 10 -heartbeat 100ms -miss 3 -runs 3 "$@"
