#!/usr/bin/env bash
# Proves that the README's install lines work for a user, as typed:
# today, when no tag exists and @latest is the newest commit of main,
# and after a release. In a throwaway clone served to the go command as
# github.com/rolefsm/rolefsm (release/lib.sh's serve), it runs each
# `go get` line of the README in an empty module of its own and a small
# program against what it got, then the `go install` line and the
# command it installed; it builds every released module as a consumer
# does (from its own go.mod, without go.work); then it cuts v0.1.0 with
# release/release.sh and does it all again at v0.1.0. Nothing outside a
# temporary directory is touched.
#
#   bash release/check.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/release/lib.sh"
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "release check: $*" >&2; exit 1; }

git clone -q "$root" "$work/repo"
git -C "$work/repo" checkout -q -B main
git -C "$work/repo" tag -l | xargs -r git -C "$work/repo" tag -d >/dev/null # as the public repository: untagged
serve "$work/repo" "$work"

# The README's install lines, without their comments.
mapfile -t lines < <(grep -E "^go (get|install) $core" "$root/README.md" | sed 's/[[:space:]]*#.*//')
[ "${#lines[@]}" = 5 ] || fail "the README has ${#lines[@]} install lines, want 5 (go get ×4, go install)"

# program MODULE: the program run against MODULE, and what it prints.
program() {
  case $1 in
  "$core")
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
    want="orders Leader 3" ;;
  "$core/rolefsmprom")
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
	fmt.Println(len(mfs), "metric families") // no transition has fired: 7 of the 8
}
GO
    want="7 metric families" ;;
  "$core/rolefsmotel")
    cat > main.go <<'GO'
package main

import (
	"context"
	"fmt"

	"github.com/rolefsm/rolefsm"
	"github.com/rolefsm/rolefsm/rolefsmotel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func main() {
	reader := sdkmetric.NewManualReader()
	set, err := rolefsmotel.NewSet(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("consumer"))
	if err != nil {
		panic(err)
	}
	c, _ := rolefsm.NewCoordinator(rolefsm.WithName("orders"))
	if err := set.Add(c); err != nil {
		panic(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		panic(err)
	}
	fmt.Println(len(rm.ScopeMetrics[0].Metrics), "instruments") // no transition has fired: 7 of the 8
}
GO
    go get go.opentelemetry.io/otel/sdk/metric@v1.47.0 >/dev/null 2>&1
    want="7 instruments" ;;
  "$core/rolefsmetcd")
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
    want="rolefsmetcd: bad configuration: no etcd client" ;;
  *) fail "no program for $1" ;;
  esac
}

# lines AT: runs each install line with @latest replaced by @AT (as typed
# when AT is latest), each go get in an empty module of its own.
lines_at() {
  local at=$1 line module out
  for line in "${lines[@]}"; do
    line=${line/@latest/@$at}
    module=${line##* }
    module=${module%@*}
    echo "\$ $line"
    case $line in
    "go get "*)
      mkdir -p "$work/$at/${module//\//_}"
      cd "$work/$at/${module//\//_}"
      go mod init -q example.com/consumer 2>/dev/null || go mod init example.com/consumer >/dev/null 2>&1
      $line 2>&1 | grep -v '^go: downloading' || true
      [ -n "$(go list -m "$module" 2>/dev/null)" ] || fail "$line did not add $module"
      if grep -qE "$core(/[a-z]+)? v0\.0\.0( |$)" go.mod; then fail "$line required v0.0.0:$(cat go.mod)"; fi
      program "$module"
      out=$(go run .)
      [ "$out" = "$want" ] || fail "the program against $module printed \"$out\", want \"$want\""
      grep -E "^(require)?[[:space:]]*$core" go.mod | sed 's/^/    /'
      echo "  program: $out" ;;
    "go install "*)
      GOBIN="$work/$at/bin" $line 2>&1 | grep -v '^go: downloading' || true
      "$work/$at/bin/rolefsm" version | sed 's/^/    /'
      out=$("$work/$at/bin/rolefsm" check Idle Replica CapabilitySelected)
      [ "$out" = ok ] || fail "rolefsm check printed \"$out\""
      echo "  rolefsm check Idle Replica CapabilitySelected: $out" ;;
    *) fail "not an install line: $line" ;;
    esac
  done
}

# consumers: every released module builds, tests included, from its own
# go.mod (what it requires of the others is what a consumer gets).
builds() {
  local m
  for m in . "${released[@]}"; do
    (cd "$work/repo/$m" && go vet ./...) || fail "$m does not build from its go.mod"
  done
  echo "every released module builds from its own go.mod"
}

echo "== today: no tag, @latest is main's newest commit"
builds
lines_at latest

echo "== release v0.1.0, cut on the clone"
(cd "$work/repo" && bash release/release.sh v0.1.0)
builds
lines_at v0.1.0
grep -q "^require $core v0.1.0\|	$core v0.1.0" "$work/v0.1.0/${core//\//_}_rolefsmprom/go.mod" ||
  fail "rolefsmprom v0.1.0 did not bring the core's v0.1.0"
echo "== a release that fails leaves no tag and the tree as it was"
git clone -q "$root" "$work/broken"
cd "$work/broken"
git checkout -q -B main
git tag -l | xargs -r git tag -d >/dev/null
# rolefsmetcd does not compile: the consumer-style build of step 4
# fails after the clone made three tags.
printf 'package rolefsmetcd\n\nvar broken int = "on purpose"\n' > rolefsmetcd/broken.go
git add -A && git commit -qm "broken on purpose"
before=$(git rev-parse HEAD)
if bash release/release.sh v0.1.0 > "$work/broken.log" 2>&1; then fail "a release of a broken module succeeded"; fi
grep -q "rolefsmetcd does not build from its go.mod" "$work/broken.log" || { cat "$work/broken.log" >&2; fail "not the failure expected"; }
[ -z "$(git tag -l)" ] || fail "a failed release left tags: $(git tag -l | tr '\n' ' ')"
[ "$(git rev-parse HEAD)" = "$before" ] && [ -z "$(git status --porcelain)" ] || fail "a failed release moved main or left changes"
tail -1 "$work/broken.log"
# A failure at step 2 (go mod tidy cannot resolve an import), after
# the core's tag was made in the clone: nothing either.
git reset -q --hard HEAD~1
printf 'package rolefsmotel\n\nimport _ "example.invalid/nosuch"\n' > rolefsmotel/broken.go
git add -A && git commit -qm "unresolvable on purpose"
before=$(git rev-parse HEAD)
if bash release/release.sh v0.1.0 > "$work/tidy.log" 2>&1; then fail "a release whose go mod tidy fails succeeded"; fi
grep -q "nothing was tagged" "$work/tidy.log" || { cat "$work/tidy.log" >&2; fail "not the failure expected"; }
[ -z "$(git tag -l)" ] && [ "$(git rev-parse HEAD)" = "$before" ] && [ -z "$(git status --porcelain)" ] ||
  fail "a release failing at go mod tidy left tags, moved main or left changes"
tail -1 "$work/tidy.log"
if bash release/release.sh v0.1 > "$work/badversion.log" 2>&1; then fail "release v0.1 was accepted"; fi
tail -1 "$work/badversion.log"
echo "release check: ok"
