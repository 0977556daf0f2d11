#!/usr/bin/env bash
# Failover on real processes electing in etcd (-election etcd): a real
# etcd (rolefsmetcd/etcdtest/cmd/etcdtest, one member on 127.0.0.1),
# 3 rolefsm node processes with 100 channels, the leader of the most
# channels stopped K times with SIGKILL and with SIGTERM per session
# TTL; then one node holding 1,000 channels for 60 s, counting its
# requests to etcd. bench/failover/main.go is the driver; its flags pass
# through:
#
#   bash bench/failover-etcd.sh     # what bench/recorded/failover-etcd.txt holds
#   bash bench/failover-etcd.sh -kills 1 -etcd-ttl 2s -etcd-rate 5s -channels 10   # CI
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
. bench/etcd-lib.sh
trap 'stop_etcd; rm -rf "$tmp"' EXIT
go build -o "$tmp/rolefsm" ./cmd/rolefsm
start_etcd "$tmp"
go run ./bench/failover -bin "$tmp/rolefsm" -nodes 3 -channels 100 -kills 10 -etcd "$endpoints" \
  -etcd-ttl 2s,10s -etcd-rate 60s -etcd-rate-channels 1000 "$@"
