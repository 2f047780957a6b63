#!/bin/sh
# The `soad` command: runs the bundled program (bin.js, beside this file once built) with V8 flags that keep an idle
# soad small. soad is event-driven and cold: its hot paths (counting, the relay) are native, so V8's optimizing
# compilers buy nothing (--lite-mode; it turns WebAssembly off, which soad does not use: --no-expose-wasm says so
# instead of a warning), and garbage collection on the main thread alone frees pages at once
# (--single-threaded-gc). Measured with `npm run bench` (README, "Figures").
self=$(readlink -f "$0" 2>/dev/null) || self=$0
exec node --lite-mode --no-expose-wasm --single-threaded-gc "$(dirname "$self")/bin.js" "$@"
