#!/usr/bin/env bash
# Each core feature must build on its own.
set -euxo pipefail
cargo check -p resilience-core --locked --no-default-features
cargo check -p resilience-core --locked --no-default-features --features slow-call-timing
cargo check -p resilience-core --locked --no-default-features --features test-util
cargo check -p resilience-core --locked --no-default-features --features tower
cargo check -p resilience-core --locked --all-features
