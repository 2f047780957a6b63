#!/bin/sh
# The `soad` command: runs the bundled program (bin.cjs, beside this file once built) with V8 flags that keep an idle
# soad small. soad is event-driven and cold: its hot paths (counting, the relay) are native, so V8's optimizing
# compilers buy nothing (--lite-mode; it turns WebAssembly off, which soad does not use: --no-expose-wasm says so
# instead of a warning), and garbage collection on the main thread alone frees pages at once
# (--single-threaded-gc). Measured with `npm run bench` (README, "Figures").
# Where this file really is (bin.cjs sits beside it): through a link (npm's PREFIX/bin/soad) readlink says; a
# path that is no link is already that, without the ~1 ms a readlink costs (as dirname would: ${self%/*} instead).
self=$0
if [ -h "$0" ]; then
  self=$(readlink -f "$0" 2>/dev/null) || self=$0
fi
case $self in
  */*) here=${self%/*} ;;
  *) here=. ;;
esac
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
# A control command, --version or help (the light path, cli/controlArgs.ts: its verb first, after any flags that
# pick a soad) runs for a moment and loads some of Node's builtins (node:net for the control socket): Node's code
# cache of its builtins holds only under its default V8 flags, so under --lite-mode each is compiled from source
# (node:net: 7 ms here). Those commands run without soad's flags; anything else (a run above all) keeps them.
light=
skip=
for arg do
  if [ -n "$skip" ]; then
    skip=
    continue
  fi
  case $arg in
    --control | --name | -c | --config) skip=1 ;;
    --control=* | --name=* | --config=*) ;;
    status | wake | start | sleep | stop | restart | reload | logs | --version | --help | -h) light=1 && break ;;
    *) break ;;
  esac
done
if [ -n "$light" ]; then
  exec "$node" "$here/bin.cjs" "$@"
fi
exec "$node" --lite-mode --no-expose-wasm --single-threaded-gc "$here/bin.cjs" "$@"
