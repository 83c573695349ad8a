#!/usr/bin/env bash
# The README's test command, then the default-feature build of core on its own.
set -euxo pipefail
export CI="${CI:-true}"
cargo test --workspace --all-features --locked
cargo test -p resilience-core --locked
# The worked example of wiring the control plane into a service's main must keep running.
cargo run -p resilience-control --example service --locked
