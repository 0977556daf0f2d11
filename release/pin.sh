#!/usr/bin/env bash
# Makes the released submodules require real versions, with no replace
# directive, so that `go get …/rolefsmprom@latest` and `go install
# …/cmd/rolefsm@latest` work before any tag exists: rolefsmprom and
# rolefsmetcd require the core at commit REV (default HEAD) under its
# pseudo-version; that is committed; then the command requires the core,
# rolefsmprom and rolefsmetcd at that new commit, which is committed too.
# (Two commits, because a module can require another only at a commit
# whose own requirements are real.) Inside the repository go.work
# supplies the local modules; what this writes is what a consumer's
# build reads.
#
# Run it on a clean tree after a commit that adds an API a submodule
# uses, and push main with the commits it makes. CI checks that every
# requirement it wrote builds as a consumer builds it (release/check.sh).
#
#   bash release/pin.sh [REV]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. release/lib.sh
rev=$(git rev-parse --verify "${1:-HEAD}^{commit}")
git merge-base --is-ancestor "$rev" HEAD || { echo "pin: $rev is not an ancestor of HEAD" >&2; exit 2; }
[ -z "$(git status --porcelain)" ] || { echo "pin: the tree is not clean" >&2; exit 2; }
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
GIT_NAME=$(git config user.name || echo "rolefsm release") GIT_EMAIL=$(git config user.email || echo "release@localhost")

# stage REV MODULE...: serve a fresh clone of the repository at REV and
# make each MODULE require our modules at REV's pseudo-version.
stage() {
  local at=$1
  shift
  rm -rf "$work/repo"
  git clone -q "$root" "$work/repo"
  git -C "$work/repo" checkout -q -B main "$at"
  (
    serve "$work/repo" "$work"
    v=$(pseudo "$work/repo" "$at")
    for m in "$@"; do
      args=(-require="$core@$v" -dropreplace="$core")
      if [ "$m" = cmd/rolefsm ]; then
        args+=(-require="$core/rolefsmprom@$v" -dropreplace="$core/rolefsmprom"
          -require="$core/rolefsmetcd@$v" -dropreplace="$core/rolefsmetcd")
      fi
      (cd "$m" && go mod edit "${args[@]}" && go mod tidy)
      echo "pin: $m requires $v"
    done
  )
}

commit() { # commit SUBJECT: the go.mod and go.sum changes, if any
  if [ -n "$(git status --porcelain)" ]; then
    git add -A -- go.work '*go.mod' '*go.sum' # a new module's go.sum too
    git -c user.name="$GIT_NAME" -c user.email="$GIT_EMAIL" commit -qm "$1"
  fi
}

stage "$rev" rolefsmprom rolefsmetcd rolefsmotel
syncwork
commit "rolefsmprom, rolefsmetcd, rolefsmotel: require the core at $(git rev-parse --short=12 "$rev")

release/pin.sh: a consumer's build reads these requirements, and
go.work supplies the local modules inside the repository."
stage HEAD cmd/rolefsm
syncwork
commit "cmd/rolefsm: require the core and the submodules at $(git rev-parse --short=12 HEAD)

release/pin.sh: go install …/cmd/rolefsm@latest refuses replace
directives and needs requirements it can fetch."
git log --oneline -2
