#!/usr/bin/env bash
# rolefsm's elections in etcd beside etcd's concurrency package, on real
# processes and a real etcd (rolefsmetcd/etcdtest, one member on
# 127.0.0.1): 3 rolefsm node processes with -election etcd against 3
# processes of bench/peers/concnode (one concurrency.Election per
# channel), both sides every round, the order alternating, medians: CPU
# and keep-alives a second at rest, and the crash failover (a kill at a
# random moment, until a live node is in office on every channel the
# dead one led, and the part of that after etcd revoked its lease).
# bench/peers/etcdside is the driver (the peers live in bench/peers'
# own module); its flags pass through:
#
#   bash bench/etcdside.sh                                  # what bench/recorded/etcdside.txt holds
#   bash bench/etcdside.sh -n 10 -rounds 1 -measure 2s      # a quick look (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
. bench/etcd-lib.sh
trap 'stop_etcd; rm -rf "$tmp"' EXIT
go build -o "$tmp/rolefsm" ./cmd/rolefsm
(cd bench/peers && go build -o "$tmp/concnode" ./concnode)
start_etcd "$tmp"
go run ./bench/peers/etcdside -rolefsm "$tmp/rolefsm" -concnode "$tmp/concnode" -etcd "$endpoints" "$@"
