#!/usr/bin/env bash
# The whole test run, as CI does it: services, binaries, then every test of
# the workspace (unit, integration and end-to-end) with nextest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash deploy/setup.sh

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "test: installing cargo-nextest"
    cargo install --locked cargo-nextest
fi

# The end-to-end tests (package jobs-e2e) drive these binaries from
# target/debug; they must be built before the tests run.
cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast
