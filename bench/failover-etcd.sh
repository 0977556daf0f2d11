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
etcd_pid=
cleanup() {
  if [ -n "$etcd_pid" ]; then kill "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/rolefsm" ./cmd/rolefsm
go build -o "$tmp/etcdtest" ./rolefsmetcd/etcdtest/cmd/etcdtest
"$tmp/etcdtest" -members 1 >"$tmp/etcd.out" 2>"$tmp/etcd.err" &
etcd_pid=$!
for _ in $(seq 600); do # up to a minute for etcd's first line
  [ -s "$tmp/etcd.out" ] && break
  kill -0 "$etcd_pid" 2>/dev/null || { cat "$tmp/etcd.err"; exit 1; }
  sleep 0.1
done
endpoints=$(head -1 "$tmp/etcd.out")
[ -n "$endpoints" ] || { echo "etcd did not start"; cat "$tmp/etcd.err"; exit 1; }
go run ./bench/failover -bin "$tmp/rolefsm" -nodes 3 -channels 100 -kills 10 -etcd "$endpoints" \
  -etcd-ttl 2s,10s -etcd-rate 60s -etcd-rate-channels 1000 "$@"
