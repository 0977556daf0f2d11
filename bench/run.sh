#!/usr/bin/env bash
# Runs the benchmark suite and prints benchstat tables, each operation
# against its baseline from the same run.
#
#   bash bench/run.sh            # -count 10 (the README's figures)
#   COUNT=3 bash bench/run.sh    # quicker, noisier
#
# Raw results are kept in bench/results/ (not committed). A full run takes
# about ten minutes on two cores.
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
# in a row instead).
go test -c -o "$out/rolefsm.test" .
(cd bench/peers && go test -c -o "../../$out/peers.test" .)
: > "$out/rolefsm.txt"
: > "$out/peers.txt"
for i in $(seq "$count"); do
  echo "run $i of $count" >&2
  "$out/rolefsm.test" -test.run '^$' -test.bench . -test.benchmem >> "$out/rolefsm.txt"
  "$out/peers.test" -test.run '^$' -test.bench . -test.benchmem >> "$out/peers.txt"
done

# compare BASELINE OP... prints OP against BASELINE, medians and ratios.
compare() {
  local base=$1; shift
  local names="$base" filter=".name:$base"
  for op in "$@"; do names="$names $op"; filter="$filter OR .name:$op"; done
  printf '\n### %s vs %s\n' "$*" "$base"
  "$benchstat" -filter "$filter" -col ".name@($names)" -row .pkg "$out/rolefsm.txt"
}

compare BaselineTable Apply ApplyReject
compare BaselineAtomicLoad Role Holds
compare BaselineAtomicLoadParallel RoleParallel
compare BaselineLooplabEvent Transition TransitionObserver TransitionParallel
compare BaselineLooplabReject TransitionReject

printf '\n### peers: the same cycle and the same rejection, per library\n'
"$benchstat" -col '/impl@(looplab rolefsm stateless-immediate stateless-queued)' -row .name "$out/peers.txt"
