#!/usr/bin/env bash
# An experiment kept out of the library: batched system calls
# (recvmmsg/sendmmsg through golang.org/x/net) and a buffered inbox
# hand-off (16 batches), on bench/steady.sh's cluster (5 nodes, 10,000
# channels each, 500 ms heartbeat, 25 s). mmsg-handoff.patch adds both
# to the transport, each behind an environment switch, so that within
# one run some nodes have the change and the others do not: the two
# halves share the same machine at the same moment, and the ratio of
# their mean CPU per interval is free of the drift between runs. Which
# nodes have it alternates run to run (1, 3, 5, then 2, 4). The result
# is in bench/recorded/steady-mmsg-handoff.txt; docs/performance.md
# says why neither is on main.
#
#   bash bench/experiments/mmsg-handoff.sh [RUNS]     # default 6, both changes
#   WHAT=handoff bash bench/experiments/mmsg-handoff.sh   # batch (default), handoff,
#                                          # or gomaxprocs (main's binary, GOMAXPROCS=1 or not)
#   STEADY=3s CHANNELS=1000 bash bench/experiments/mmsg-handoff.sh 1   # a quick look (CI)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
runs=${1:-6}
what=${WHAT:-batch}
steady=${STEADY:-25s}
channels=${CHANNELS:-10000}
work=$(mktemp -d)
trap 'git worktree remove --force "$work/tree" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
# The patch was made against this commit, and is measured there.
base=dc9e6f0
git worktree add -q --detach "$work/tree" "$base"
(cd "$work/tree" && go build -o "$work/base" ./cmd/rolefsm &&
	git apply "$root/bench/experiments/mmsg-handoff.patch" &&
	go build -o "$work/patched" ./cmd/rolefsm)
# The patched binary batches and hands off through a buffer unless told
# not to; the wrapper tells the nodes not in $WITH (rolefsm node -id N).
# WHAT=gomaxprocs runs the base binary, with GOMAXPROCS=1 on $WITH.
cat >"$work/node" <<WRAP
#!/usr/bin/env bash
case "$what" in
gomaxprocs)
	case " \$WITH " in *" \$3 "*) export GOMAXPROCS=1 ;; esac
	exec "$work/base" "\$@" ;;
esac
case " \$WITH " in
*" \$3 "*) ;;
*) export ROLEFSM_NOBATCH=1 ROLEFSM_UNBUF=1 ;;
esac
case "$what" in
batch) export ROLEFSM_UNBUF=1 ;;
handoff) export ROLEFSM_NOBATCH=1 ;;
esac
exec "$work/patched" "\$@"
WRAP
chmod +x "$work/node"
echo "# bash bench/experiments/mmsg-handoff.sh $runs (WHAT=$what), $(date -u +%F), $(go version | cut -d' ' -f3-), $(nproc) cores, commit $base + mmsg-handoff.patch"
echo "# CPU per node per 500 ms interval, $channels channels, $steady; 'with' = the nodes that have the change ($what)"
ratios=()
for r in $(seq "$runs"); do
	with="1 3 5"
	if ((r % 2 == 0)); then with="2 4"; fi
	out=$(WITH="$with" go run ./bench/failover -bin "$work/node" -nodes 5 -kills 0 -steady "$steady" -steady-channels "$channels" 2>&1 |
		awk '$1 ~ /^[1-5]$/ { print $1, $(NF-2) }')
	line=$(awk -v with=" $with " '
		{ v = $2; sub(/ms$/, "", v); printf "%s %s  ", $1, $2
		  if (index(with, " " $1 " ")) { ws += v; wn++ } else { os += v; on++ } }
		END { printf "| with %.2f ms, without %.2f ms, ratio %.3f", ws/wn, os/on, (ws/wn)/(os/on) }' <<<"$out")
	echo "run $r  with: $with  $line"
	ratios+=("$(grep -o 'ratio [0-9.]*' <<<"$line" | cut -d' ' -f2)")
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "# median ratio (with/without) over %d runs: %.3f\n", NR, (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
