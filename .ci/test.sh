#!/usr/bin/env bash
# The README's test command, then the default-feature build of core on its own, the worked
# example, and the README's demo command (short, in a scratch directory).
set -euxo pipefail
export CI="${CI:-true}"
cargo test --workspace --all-features --locked
cargo test -p resilience-core --locked
# The worked example of wiring the control plane into a service's main must keep running.
cargo run -p resilience-control --example service --locked
# `resilience demo` as a newcomer runs it (debug build here; the README uses --release).
cargo build -p resilience-control --bin resilience --locked
scratch=$(mktemp -d)
(cd "$scratch" && "$OLDPWD/target/debug/resilience" demo --duration 6s)
rm -rf "$scratch"
