#!/usr/bin/env bash
set -euxo pipefail
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked
# The data plane must not depend on the async/network stack.
if cargo tree -p resilience-core -e normal --locked | grep -qE '(tokio|redis|axum) v'; then
    echo "resilience-core depends on tokio/redis/axum" >&2
    exit 1
fi
