#!/usr/bin/env bash
# Heartbeat punctuality on a real process: one rolefsm node with 1,000
# channels at a 100 ms heartbeat, its heartbeats' gaps as received, idle
# and under a CPU hog, with its log to a file and to a pipe nobody
# reads. bench/punctuality/main.go is the driver; its flags pass through:
#
#   bash bench/punctuality.sh                 # what bench/recorded/punctuality.txt holds
#   bash bench/punctuality.sh -duration 2s    # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/rolefsm
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/rolefsm
go run ./bench/punctuality -bin "$bin" -channels 1000 -heartbeat 100ms -duration 20s "$@"
