# Sourced by the benchmarks that need a real etcd. start_etcd TMP builds
# rolefsmetcd/etcdtest/cmd/etcdtest into TMP, starts one member on
# 127.0.0.1 and sets $endpoints; stop_etcd stops it (call it from the
# caller's EXIT trap).
etcd_pid=
start_etcd() {
  local tmp=$1
  go build -o "$tmp/etcdtest" ./rolefsmetcd/etcdtest/cmd/etcdtest
  "$tmp/etcdtest" -members 1 >"$tmp/etcd.out" 2>"$tmp/etcd.err" &
  etcd_pid=$!
  for _ in $(seq 600); do # up to a minute for etcd's first line
    [ -s "$tmp/etcd.out" ] && break
    kill -0 "$etcd_pid" 2>/dev/null || { cat "$tmp/etcd.err"; return 1; }
    sleep 0.1
  done
  endpoints=$(head -1 "$tmp/etcd.out")
  [ -n "$endpoints" ] || { echo "etcd did not start"; cat "$tmp/etcd.err"; return 1; }
}
stop_etcd() {
  if [ -n "$etcd_pid" ]; then kill "$etcd_pid" 2>/dev/null || true; wait "$etcd_pid" 2>/dev/null || true; fi
}
