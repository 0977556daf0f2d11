#!/usr/bin/env bash
# Compares the simulator before the replica runtime (commit 61a17a3, the
# rules inside sim) with the working tree (sim driving replica.Node):
# the 1000-seed sweep, one run, setup, and one step of a settled cluster
# of 5, 16 and 64 nodes, per node. The old tree gets the same NodeStep
# benchmark the new one has. The two binaries run interleaved, so that
# both sample the same stretches of machine noise.
#
#   bash bench/sim-before-after.sh          # 5 rounds of -count 2
#   ROUNDS=2 bash bench/sim-before-after.sh # quicker, noisier
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${ROUNDS:-5}
before=61a17a3
benchstat_version=v0.0.0-20260908200009-22c9c6c9d4da
go install "golang.org/x/perf/cmd/benchstat@${benchstat_version}"
benchstat="$(go env GOPATH)/bin/benchstat"

out=bench/results
mkdir -p "$out"
tree=$(mktemp -d)
trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT
git worktree add --detach "$tree" "$before" >/dev/null 2>&1

# The old simulator had no NodeStep benchmark: add it, against its own
# newRun(cfg, trace).
cat > "$tree/sim/nodestep_test.go" <<'GO'
package sim

import (
	"fmt"
	"testing"
)

func BenchmarkNodeStep(b *testing.B) {
	for _, nodes := range []int{5, 16, 64} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			cfg, err := Config{Nodes: nodes, Steps: 400 + b.N}.normalized()
			if err != nil {
				b.Fatal(err)
			}
			r := newRun(cfg, nil)
			if err := r.start(); err != nil {
				b.Fatal(err)
			}
			for r.step = 0; r.step < 400; r.step++ {
				r.tick()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.tick()
				r.step++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(nodes), "ns/node-step")
		})
	}
}
GO
(cd "$tree" && go test -c -o "$OLDPWD/$out/sim-before.test" ./sim)
go test -c -o "$out/sim-after.test" ./sim

bench='NodeStep|Sweep1000|BenchmarkRun$|BaselineSetup'
: > "$out/sim-before.txt"
: > "$out/sim-after.txt"
for i in $(seq "$rounds"); do
  (cd sim && "../$out/sim-before.test" -test.run '^$' -test.bench "$bench" -test.benchmem -test.count 2 >> "../$out/sim-before.txt")
  (cd sim && "../$out/sim-after.test" -test.run '^$' -test.bench "$bench" -test.benchmem -test.count 2 >> "../$out/sim-after.txt")
done
"$benchstat" before="$out/sim-before.txt" after="$out/sim-after.txt"
