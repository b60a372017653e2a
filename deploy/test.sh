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

# The suites of normal and interactive runs once more, every run through
# the warm pool (tests/src/env.rs, JOBS_E2E_WARM). Left out: the one test
# that counts concurrency from Docker's container starts and deaths, which
# a warm container, started before its job, does not mark.
JOBS_E2E_WARM=2 cargo nextest run -p jobs-e2e --no-fail-fast \
    --test output_and_exit_codes --test lifecycle --test secrets \
    --test uploads --test artifacts_tmp --test follow --test hostile_tenant \
    --test interactive --test attach_stdin \
    -E 'not test(twenty_jobs_on_four_slots_run_at_most_four_at_a_time_and_end_with_their_own_codes)'
