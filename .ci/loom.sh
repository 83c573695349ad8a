#!/usr/bin/env bash
# loom models of every lock-free protocol, in their own target dir (the cfg changes every
# crate's build, and must not throw away the normal cache).
set -euxo pipefail
RUSTFLAGS="--cfg resilience_loom" LOOM_MAX_PREEMPTIONS=2 \
    cargo test -p resilience-core --lib --release --locked --target-dir target/loom -- loom_
