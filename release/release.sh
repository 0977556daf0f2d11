#!/usr/bin/env bash
# Cuts release VERSION (vX.Y.Z) of every released module, all or
# nothing. It checks first (a clean main, a well-formed version, none
# of the five tags taken), then works in a throwaway clone that it
# serves to the go command as github.com/rolefsm/rolefsm: it tags the
# core; makes rolefsmprom, rolefsmetcd and rolefsmotel require the
# core's tag and tags each; makes the command require all three and tags it; and
# builds every module as a consumer builds it. Only when all of that
# has passed does it bring the commits and the tags into this
# repository (main fast-forwards), and, with PUSH=1, push main and the
# five tags in one atomic push. On any failure it leaves no tag and the
# tree as it found it. See RELEASING.md.
#
#   bash release/release.sh v0.1.0
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. release/lib.sh
fail() { echo "release: $*" >&2; exit 2; }

v=${1:-}
[[ $v =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "usage: release/release.sh vX.Y.Z (got \"$v\")"
[ -z "$(git status --porcelain)" ] || fail "the tree is not clean"
[ "$(git rev-parse --abbrev-ref HEAD)" = main ] || fail "not on main"
tags=("$v")
for m in "${released[@]}"; do tags+=("$m/$v"); done
for t in "${tags[@]}"; do
  ! git rev-parse -q --verify "refs/tags/$t" >/dev/null || fail "tag $t exists"
done
if [ "${PUSH:-0}" = 1 ]; then
  for t in "${tags[@]}"; do
    [ -z "$(git ls-remote --tags origin "refs/tags/$t")" ] || fail "tag $t exists at origin"
  done
fi
start=$(git rev-parse HEAD)

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
git clone -q "$root" "$work/repo"
cd "$work/repo"
git checkout -q -B main "$start"
git tag -l | xargs -r git tag -d >/dev/null # only the release's own tags are resolved
# cut does the work in the clone. Every step checks itself: set -e
# does not hold in a function whose status is tested (as below).
cut() {
  serve "$work/repo" "$work"
  # 1. The core.
  git tag "$v" || return 1
  # 2. rolefsmprom, rolefsmetcd and rolefsmotel require the core's tag.
  for m in rolefsmprom rolefsmetcd rolefsmotel; do
    (cd "$m" && go mod edit -require="$core@$v" && go mod tidy) || return 1
  done
  syncwork || return 1
  git commit -qam "rolefsmprom, rolefsmetcd, rolefsmotel: require $core $v" || return 1
  for m in rolefsmprom rolefsmetcd rolefsmotel; do
    git tag "$m/$v" || return 1
  done
  # 3. The command requires the three tags.
  (cd cmd/rolefsm && go mod edit -require="$core@$v" -require="$core/rolefsmprom@$v" -require="$core/rolefsmetcd@$v" &&
    go mod tidy) || return 1
  syncwork || return 1
  git commit -qam "cmd/rolefsm: require $core, rolefsmprom and rolefsmetcd $v" || return 1
  git tag "cmd/rolefsm/$v" || return 1
  # 4. Every released module builds, tests included, as a consumer's
  # build sees it: from its own go.mod, without the workspace, and
  # without changing it (-mod=readonly: a go.mod or go.sum that needs
  # repair fails here, it is not repaired untagged).
  for m in . "${released[@]}"; do
    (cd "$m" && GOFLAGS=-mod=readonly go vet ./...) || { echo "release: $m does not build from its go.mod" >&2; return 1; }
  done
  [ -z "$(git status --porcelain)" ] || { echo "release: building changed the tagged tree:" >&2; git status --short >&2; return 1; }
}
if ! (cut); then
  echo "release: nothing was tagged; the repository is as it was" >&2
  exit 1
fi
cd "$root"

# Bring it home: main fast-forwards, then the tags. Undo both if either
# fails.
undo() {
  for t in "${tags[@]}"; do git tag -d "$t" >/dev/null 2>&1 || true; done
  git reset -q --hard "$start"
  echo "release: undone; nothing was tagged" >&2
}
bring() {
  git fetch -q "$work/repo" main || return 1
  git merge -q --ff-only FETCH_HEAD || return 1
  for t in "${tags[@]}"; do
    git fetch -q "$work/repo" "refs/tags/$t:refs/tags/$t" || return 1
  done
}
if ! bring; then
  undo
  exit 1
fi
if [ "${PUSH:-0}" = 1 ]; then
  if ! git push --atomic origin main "${tags[@]/#/refs/tags/}"; then
    # --atomic: origin got nothing. Nor does this repository keep any.
    undo
    exit 1
  fi
fi
echo "released $v: ${tags[*]}"
