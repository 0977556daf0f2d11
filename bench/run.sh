#!/usr/bin/env bash
# Runs the benchmark suite and prints benchstat tables, each operation
# against its baseline from the same run.
#
#   bash bench/run.sh            # -count 10 (the figures in docs/performance.md)
#   COUNT=3 bash bench/run.sh    # quicker, noisier
#
# Raw results are kept in bench/results/ (not committed). A full run takes
# about twenty minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."

count=${COUNT:-10}
benchstat_version=v0.0.0-20260908200009-22c9c6c9d4da
go install "golang.org/x/perf/cmd/benchstat@${benchstat_version}"
benchstat="$(go env GOPATH)/bin/benchstat"

out=bench/results
mkdir -p "$out"
echo "go: $(go version); cores: $(nproc); count: $count" | tee "$out/machine.txt"

# Build each test binary once, then run the whole suite $count times, so
# that a baseline and the operation it is compared with sample the same
# stretches of machine noise (-count N would run each benchmark N times
# in a row instead). Each package's results go to their own file.
pkgs=(rolefsm:. replica:./replica udp:./replica/udp prom:./rolefsmprom peers:./bench/peers)
for p in "${pkgs[@]}"; do
  name=${p%%:*} dir=${p#*:}
  (cd "$dir" && go test -c -o "$OLDPWD/$out/$name.test" .)
  : > "$out/$name.txt"
done
for i in $(seq "$count"); do
  echo "run $i of $count" >&2
  for p in "${pkgs[@]}"; do
    name=${p%%:*}
    "$out/$name.test" -test.run '^$' -test.bench . -test.benchmem >> "$out/$name.txt"
  done
done

# compare FILE BASELINE OP... prints OP against BASELINE, medians and
# ratios, one row per sub-benchmark configuration (or package).
compare() {
  local file=$1 base=$2; shift 2
  local names="$base" filter=".name:$base"
  for op in "$@"; do names="$names $op"; filter="$filter OR .name:$op"; done
  printf '\n### %s vs %s\n' "$*" "$base"
  "$benchstat" -filter "$filter" -col ".name@($names)" -row "${ROW:-.pkg}" "$out/$file.txt"
}

compare rolefsm BaselineTable Apply ApplyReject
compare rolefsm BaselineAtomicLoad Role Holds
compare rolefsm BaselineAtomicLoadParallel RoleParallel
compare rolefsm BaselineLooplabEvent Transition TransitionObserver TransitionParallel
compare rolefsm BaselineLooplabReject TransitionReject

printf '\n## How cost grows with the number of channels\n'
compare rolefsm BaselineHeapLooplab HeapCoordinator
compare rolefsm BaselineLockedCopy Counts Stats
ROW=/channels compare rolefsm BaselineLooplabEventChannels TransitionChannels
compare replica BaselineHeapCoordinator HeapNodeChannel
printf '\n### GatherSet, GatherOwnSeries (one Gather of a registry) and their floor, BaselineGatherConst\n'
"$benchstat" -col .name -row '/channels /all /series' "$out/prom.txt"
printf '\n### NodeInterval (one 500 ms interval, four peers) vs BaselineSealOpen (its AEAD work at 10,000 channels)\n'
"$benchstat" -col .name -row /channels "$out/udp.txt"

printf '\n### peers: the same cycle and the same rejection, per library\n'
"$benchstat" -col '/impl@(looplab rolefsm stateless-immediate stateless-queued)' -row .name "$out/peers.txt"
