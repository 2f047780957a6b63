#!/bin/sh
# The `soad` command: runs the bundled program (bin.js, beside this file once built) with V8 flags that keep an idle
# soad small. soad is event-driven and cold: its hot paths (counting, the relay) are native, so V8's optimizing
# compilers buy nothing (--lite-mode; it turns WebAssembly off, which soad does not use: --no-expose-wasm says so
# instead of a warning), and garbage collection on the main thread alone frees pages at once
# (--single-threaded-gc). Measured with `npm run bench` (README, "Figures").
self=$(readlink -f "$0" 2>/dev/null) || self=$0
# Which node: the first Node.js 20 or newer of: a node on PATH, in PATH's order (as npm's own commands find it, but
# past an older one); the one beside this command, where a global install put both (PREFIX/bin/soad and
# PREFIX/bin/node: nvm, a Node unpacked in /opt), reached through the link npm made or through this file's own path
# (PREFIX/lib/node_modules/soad/dist/soad). systemd gives its services PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:
# /usr/bin only, without such a Node, and an older distribution's node (Debian 12's is 18) may be there.
# `node --version` answers before V8 starts: 3.6 ms here (30 runs), against ~165 ms of CPU for `soad --version`.
node=
found=
# pick FILE: sets node to FILE if it is a Node.js 20 or newer, else notes what it is in found.
pick() {
  [ -f "$1" ] && [ -x "$1" ] || return 1
  version=$("$1" --version 2>/dev/null)
  case $version in
    v[2-9][0-9].* | v[1-9][0-9][0-9]*.*) node=$1 && return 0 ;;
  esac
  found="$found; $1 is ${version:-not a working node}"
  return 1
}
set -f
IFS=:
for dir in $PATH; do
  pick "${dir:-.}/node" && break
done
unset IFS
set +f
[ -n "$node" ] || pick "${0%/*}/node" || pick "${self%/lib/node_modules/soad/dist/soad}/bin/node" || {
  echo "soad: cannot find node (Node.js 20 or newer) on PATH=$PATH nor beside $0$found: install Node.js 20 or newer, or put the directory of its node in PATH (in a systemd unit: Environment=PATH=/that/dir:/usr/bin:/bin)" >&2
  exit 127
}
dist=$(dirname "$self")
# The V8 flags soad runs with (cli/snapshot.mjs reads this line: a snapshot is made under the flags it runs under).
flags="--lite-mode --no-expose-wasm --single-threaded-gc"
# SOAD_SNAPSHOT=1: start from the startup snapshot (cli/snapshot.ts) made for this very node (snapshot.key says which:
# its version and real path), by the build or, when there is none, here (cli/snapshot.mjs, once: about a second).
# Restoring it skips compiling and evaluating the bundle, half of soad's start-up, but node keeps the snapshot's data
# in memory for good: 6.7 MB more of private memory in each soad (`npm run bench`, README "Figures"), so it is not
# the default. Node refuses a snapshot made by another node or under other V8 flags, and exits (code 14) instead of
# running without it: it is used only for the node that made it, and not when NODE_OPTIONS may hold V8 flags.
if [ "$SOAD_SNAPSHOT" = 1 ]; then
  if [ -n "$NODE_OPTIONS" ]; then
    echo "soad: not starting from the startup snapshot (SOAD_SNAPSHOT=1): NODE_OPTIONS is set, and node refuses a snapshot under other V8 flags" >&2
  else
    real=$(readlink -f "$node")
    key=
    [ -r "$dist/snapshot.key" ] && read -r key <"$dist/snapshot.key"
    if [ "$key" != "$version $real" ] && [ -w "$dist" ] && [ -r "$dist/snapshot.cjs" ]; then
      "$node" "$dist/../src/cli/snapshot.mjs" "$dist" && read -r key <"$dist/snapshot.key"
    fi
    if [ "$key" = "$version $real" ] && [ -r "$dist/snapshot.blob" ]; then
      exec "$node" $flags --snapshot-blob "$dist/snapshot.blob" "$dist/bin.js" "$@"
    fi
    echo "soad: no startup snapshot for $node ($version) in $dist, and none could be made there (SOAD_SNAPSHOT=1): starting without it" >&2
  fi
fi
exec "$node" $flags "$dist/bin.js" "$@"
