#!/usr/bin/env bash
# The README's test command, then the default-feature build of core on its own.
set -euxo pipefail
export CI="${CI:-true}"
cargo test --workspace --all-features --locked
cargo test -p resilience-core --locked
