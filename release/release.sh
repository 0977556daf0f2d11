#!/usr/bin/env bash
# Cuts release VERSION (vX.Y.Z) of every released module, in the order
# their requirements need: the core, then rolefsmprom and rolefsmetcd
# (which require the core's tag), then the command (which requires all
# three, and drops its
# replace directives, so that `go install ...@VERSION` accepts it). Run
# it on a clean main; it commits and tags, and pushes nothing unless
# PUSH=1 (each stage's tags must be fetchable before the next stage
# tidies: with PUSH=1 it pushes them as it goes). See RELEASING.md.
#
#   bash release/release.sh v0.1.0
set -euo pipefail
cd "$(dirname "$0")/.."
v=${1:?usage: release/release.sh vX.Y.Z}
[[ $v =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "release: $v is not vX.Y.Z" >&2; exit 2; }
[ -z "$(git status --porcelain)" ] || { echo "release: the tree is not clean" >&2; exit 2; }
core=github.com/rolefsm/rolefsm
push() { if [ "${PUSH:-0}" = 1 ]; then git push origin HEAD "$@"; fi; }

# 1. The core.
git tag "$v"
push "$v"

# 2. rolefsmprom requires the core's tag; its replace stays, for work in
# the repository (a consumer's build ignores it).
(cd rolefsmprom && go mod edit -require="$core@$v")
git commit -qam "rolefsmprom: require $core $v"
git tag "rolefsmprom/$v"
push "rolefsmprom/$v"

# 3. rolefsmetcd likewise.
(cd rolefsmetcd && go mod edit -require="$core@$v")
git commit -qam "rolefsmetcd: require $core $v"
git tag "rolefsmetcd/$v"
push "rolefsmetcd/$v"

# 4. The command requires the three tags and has no replace: go install
# refuses a module that has one. Its go.sum gains the tags' hashes.
(cd cmd/rolefsm &&
  go mod edit -require="$core@$v" -require="$core/rolefsmprom@$v" -require="$core/rolefsmetcd@$v" \
    -dropreplace="$core" -dropreplace="$core/rolefsmprom" -dropreplace="$core/rolefsmetcd" &&
  GOWORK=off go mod tidy)
git commit -qam "cmd/rolefsm: require $core, rolefsmprom and rolefsmetcd $v"
git tag "cmd/rolefsm/$v"
push "cmd/rolefsm/$v"
echo "released $v: $v, rolefsmprom/$v, rolefsmetcd/$v, cmd/rolefsm/$v"
