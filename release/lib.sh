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
  # Other modules come from the machine's module cache first, then the
  # proxy (a file:// proxy answers 404 for what it lacks). GOPRIVATE
  # modules bypass proxies: ours always come from REPO.
  local cache proxy
  cache=$(go env GOMODCACHE)/cache/download
  proxy=$(go env GOPROXY)
  export GOPROXY="file://$cache,$proxy"
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
released=(rolefsmprom rolefsmetcd rolefsmotel cmd/rolefsm)

# syncwork: in go.work, every version of our modules that a go.mod here
# requires is replaced by its directory, since a workspace would fetch
# the go.mod of a required version even of a module it uses. release/*.sh own
# go.work from its marker line to the end.
marker="// Written by release/lib.sh"
syncwork() {
  sed -i "\|^$marker|,\$d" go.work
  sed -i -e :a -e '/^\n*$/{$d;N;ba' -e '}' go.work # trailing blank lines
  {
    printf '\n%s: each version of our modules that a go.mod here\n' "$marker"
    echo "// requires is the local directory (a workspace would fetch its go.mod)."
    grep -hE "^[[:space:]]+$core(/rolefsmprom|/rolefsmetcd|/rolefsmotel)? v[^ ]+( //.*)?\$" rolefsmprom/go.mod rolefsmetcd/go.mod rolefsmotel/go.mod cmd/rolefsm/go.mod |
      awk '{print $1, $2}' | sort -u | while read -r path version; do
        case $path in
        "$core") dir=./ ;;
        "$core"/*) dir=./${path#"$core"/} ;;
        esac
        echo "replace $path $version => $dir"
      done
  } >> go.work
  go work edit -fmt go.work
}
