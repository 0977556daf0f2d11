#!/usr/bin/env bash
# Failover on real processes: rolefsm node processes on 127.0.0.1, the
# leader of the most channels stopped K times with SIGKILL and with
# SIGTERM, per heartbeat setting; then a steady state of 3 nodes with
# 1,000 channels each at a 500 ms heartbeat (CPU from /proc, datagrams
# and bytes per peer per interval from /metrics). bench/failover/main.go
# is the driver; its flags pass through:
#
#   bash bench/failover.sh                         # what bench/recorded/failover.txt holds
#   bash bench/failover.sh -kills 3 -steady 0      # a quick look
#   bash bench/failover.sh -steady 0 -svg failover.svg   # and a chart of every failover
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/rolefsm
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/rolefsm
go run ./bench/failover -bin "$bin" -nodes 3 -channels 100 -kills 20 -heartbeat 100ms,500ms -miss 3 -steady 30s "$@"
