#!/usr/bin/env bash
# Proves that a release works for a consumer: in a throwaway clone,
# cuts release v0.1.0 with release/release.sh, serves the clone to the
# go command as github.com/rolefsm/rolefsm (GOPRIVATE, and a git
# insteadOf that points the repository's URL at the clone), then, in an
# empty module each, `go get`s the core, rolefsmprom and rolefsmetcd alone and
# runs a small program against each, and `go install`s the command and
# runs it. Nothing outside a temporary directory is touched.
#
#   bash release/check.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
v=v0.1.0
core=github.com/rolefsm/rolefsm

git clone -q "$root" "$work/repo"
git -C "$work/repo" checkout -q -B main
export GIT_CONFIG_GLOBAL="$work/gitconfig" GIT_CONFIG_NOSYSTEM=1
git config --global user.name "release check"
git config --global user.email "release-check@localhost"
git config --global url."file://$work/repo".insteadOf "https://$core"
export GIT_ALLOW_PROTOCOL=file:https
# Our modules come from the clone, with no checksum database; the
# others from the module proxy as usual. A cache of its own, so that
# the throwaway tags never reach the machine's.
export GOPRIVATE="$core" GOMODCACHE="$work/mod" GOWORK=off GOFLAGS=-mod=mod GOTOOLCHAIN=local

echo "== release $v in a throwaway clone"
(cd "$work/repo" && bash release/release.sh "$v")

consumer() { # consumer NAME: an empty module in $work/NAME
  mkdir -p "$work/$1"
  cd "$work/$1"
  go mod init -q example.com/"$1" 2>/dev/null || go mod init example.com/"$1" >/dev/null 2>&1
}

# expect MODULE WANT: go gets MODULE@$v into the consumer module here,
# checks that it brought the core's tag along (for a submodule), runs
# main.go and compares its output with WANT.
expect() {
  go get "$1@$v"
  if [ "$1" != "$core" ]; then
    grep -q "^require.*$core v\|	$core $v" go.mod || { echo "release check: $1 did not bring the core's $v" >&2; cat go.mod >&2; exit 1; }
  fi
  local out
  out=$(go run .)
  [ "$out" = "$2" ] || { echo "release check: the program against $1 printed \"$out\", want \"$2\"" >&2; exit 1; }
  echo "$out"
}

echo "== the core alone"
consumer core
cat > main.go <<'GO'
package main

import (
	"context"
	"fmt"

	"github.com/rolefsm/rolefsm"
)

func main() {
	c, err := rolefsm.NewCoordinator(rolefsm.WithName("orders"))
	if err != nil {
		panic(err)
	}
	for _, s := range []rolefsm.Signal{rolefsm.CapabilitySelected, rolefsm.MissedHeartbeats, rolefsm.ElectionWon} {
		if _, err := c.Fire(context.Background(), s); err != nil {
			panic(err)
		}
	}
	fmt.Println(c.Name(), c.Role(), c.Lease().Generation)
}
GO
expect "$core" "orders Leader 3"

echo "== rolefsmprom alone"
consumer prom
cat > main.go <<'GO'
package main

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/rolefsmprom"
)

func main() {
	c, err := rolefsm.NewCoordinator(rolefsm.WithName("orders"))
	if err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(rolefsmprom.NewCollector(c))
	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	fmt.Println(len(mfs), "metric families") // no transition has fired: 6 of the 7
}
GO
expect "$core/rolefsmprom" "6 metric families"

echo "== rolefsmetcd alone"
consumer etcd
cat > main.go <<'GO'
package main

import (
	"context"
	"fmt"

	"github.com/rolefsm/rolefsm/rolefsmetcd"
)

func main() {
	_, err := rolefsmetcd.New(context.Background(), rolefsmetcd.Config{}, nil)
	fmt.Println(err)
}
GO
expect "$core/rolefsmetcd" "rolefsmetcd: bad configuration: no etcd client"

echo "== go install the command"
GOBIN="$work/bin" go install "$core/cmd/rolefsm@$v"
out=$("$work/bin/rolefsm" check Idle Replica CapabilitySelected)
[ "$out" = ok ] || { echo "release check: rolefsm check printed \"$out\"" >&2; exit 1; }
echo "rolefsm check Idle Replica CapabilitySelected: $out"
echo "release check: ok"
