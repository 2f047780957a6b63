#!/bin/sh
# The `soad` command: runs the bundled program (bin.js, beside this file once built) with V8 flags that keep an idle
# soad small. soad is event-driven and cold: its hot paths (counting, the relay) are native, so V8's optimizing
# compilers buy nothing (--lite-mode; it turns WebAssembly off, which soad does not use: --no-expose-wasm says so
# instead of a warning), and garbage collection on the main thread alone frees pages at once
# (--single-threaded-gc). Measured with `npm run bench` (README, "Figures").
self=$(readlink -f "$0" 2>/dev/null) || self=$0
# Which node: the one on PATH, as npm's own commands find it; else the one beside this command, where a global
# install put both (PREFIX/bin/soad and PREFIX/bin/node: nvm, a Node unpacked in /opt), reached through the link
# npm made or through this file's own path (PREFIX/lib/node_modules/soad/dist/soad). systemd gives its services a
# PATH of /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin only, without such a Node.
node=$(command -v node) || node=
if [ -z "$node" ]; then
  for candidate in "$(dirname "$0")/node" "${self%/lib/node_modules/soad/dist/soad}/bin/node"; do
    if [ -f "$candidate" ] && [ -x "$candidate" ]; then
      node=$candidate
      break
    fi
  done
fi
if [ -z "$node" ]; then
  echo "soad: cannot find node (Node.js 20 or newer) on PATH=$PATH nor beside $0: install Node.js, or put the directory of its node in PATH (in a systemd unit: Environment=PATH=/that/dir:/usr/bin:/bin)" >&2
  exit 127
fi
exec "$node" --lite-mode --no-expose-wasm --single-threaded-gc "$(dirname "$self")/bin.js" "$@"
