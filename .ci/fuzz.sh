#!/usr/bin/env bash
# Builds every fuzz target and runs each briefly, seeded with the committed corpus. New
# inputs go to a scratch directory, so the checkout stays clean.
set -euxo pipefail
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cd fuzz
cargo fuzz build --sanitizer none -O
seconds="${FUZZ_SECONDS:-20}"
for target in $(cargo fuzz list); do
    scratch=$(mktemp -d)
    cargo fuzz run --sanitizer none -O "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=2048
    rm -rf "$scratch"
done
