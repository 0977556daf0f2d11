# Shared by release/*.sh: serve a git repository to the go command as
# github.com/rolefsm/rolefsm, and name a commit's pseudo-version.
# Source it; it sets nothing until a function is called.

core=github.com/rolefsm/rolefsm

# serve REPO SCRATCH: from here on, the go command reads our modules from
# the git repository REPO (a git insteadOf points the public URL at it;
# GOPRIVATE skips the checksum database for them) and everything else
# from the module proxy as usual, with a module cache and a git
# configuration of their own under SCRATCH, so that nothing reaches the
# machine's. GOWORK=off: each module is built as a consumer builds it.
serve() {
  local repo=$1 scratch=$2
  export GIT_CONFIG_GLOBAL="$scratch/gitconfig" GIT_CONFIG_NOSYSTEM=1
  git config --global user.name "rolefsm release"
  git config --global user.email "release@localhost"
  git config --global url."file://$repo".insteadOf "https://$core"
  export GIT_ALLOW_PROTOCOL=file:https
  export GOPRIVATE="$core" GOMODCACHE="$scratch/mod" GOWORK=off GOFLAGS=-mod=mod GOTOOLCHAIN=local
}

# pseudo REPO REV: the pseudo-version the go command gives commit REV of
# REPO when no tag precedes it (v0.0.0-TIME-HASH, the commit time in UTC).
pseudo() {
  local repo=$1 rev=$2 when hash
  when=$(TZ=UTC git -C "$repo" show -s --format=%cd --date=format-local:%Y%m%d%H%M%S "$rev")
  hash=$(git -C "$repo" rev-parse --short=12 "$rev")
  echo "v0.0.0-$when-$hash"
}

# released: the module directories released beside the core, in the
# order their requirements need (the command requires the others).
released=(rolefsmprom rolefsmetcd cmd/rolefsm)
