#!/usr/bin/env bash
# From a fresh Debian machine to a first job with `jobs dev`, which needs no
# database server and no broker: installs and starts Docker (the only
# service it needs), builds the busybox test image and the `jobs` binary,
# starts `jobs dev` in the background, creates the app `demo` from the test
# image, and runs a first job, showing its output and exit code.
#
# The CLI is given nothing: its default API URL is where `jobs dev` listens,
# and its token comes from the file `jobs dev` writes. `jobs dev` keeps
# running afterwards; its log is in target/dev-quickstart/. Safe to run
# again. Run as root (it installs packages).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { echo "dev-quickstart: $*"; }
die() {
    echo "dev-quickstart: error: $*" >&2
    exit 1
}

[[ "$(id -u)" == 0 ]] || die "run me as root (I install packages and start Docker)"

# --- Docker and the test image ------------------------------------------------
bash deploy/setup.sh --docker-only

# --- jobs dev -------------------------------------------------------------------
cargo build -p jobs-cli
jobsctl=target/debug/jobsctl
# The zero-configuration path: whatever this shell exports is not used.
unset JOBS_API_URL JOBS_TOKEN JOBS_APP

state=target/dev-quickstart
mkdir -p "$state"
if ! "$jobsctl" apps list >/dev/null 2>&1 </dev/null; then
    log "starting jobs dev in the background (log in $state/jobs-dev.log)"
    nohup "$jobsctl" dev >"$state/jobs-dev.out" 2>"$state/jobs-dev.log" </dev/null &
    dev_pid=$!
    echo "$dev_pid" >"$state/jobs-dev.pid"
    for _ in $(seq 1 100); do
        grep -q '^listening on ' "$state/jobs-dev.out" 2>/dev/null && break
        kill -0 "$dev_pid" 2>/dev/null || {
            cat "$state/jobs-dev.log" >&2
            die "jobs dev exited"
        }
        sleep 0.1
    done
    grep -q '^listening on ' "$state/jobs-dev.out" || die "jobs dev is not ready; see $state/jobs-dev.log"
    cat "$state/jobs-dev.log"
fi

"$jobsctl" apps show demo >/dev/null 2>&1 </dev/null ||
    "$jobsctl" apps create demo --image jobs-test/busybox:latest -e GREETING=hello >/dev/null </dev/null

# `-a demo` in case earlier runs left other apps; with one app it may go.
echo "dev-quickstart: jobsctl run -a demo -- sh -c 'echo \$GREETING from a one-off container; exit 3'"
set +e
"$jobsctl" run -a demo -- sh -c 'echo $GREETING from a one-off container; exit 3' </dev/null
code=$?
set -e
echo "dev-quickstart: the job exited with code $code (expected 3)"
echo "dev-quickstart: try it yourself (no variables needed):"
echo "  $jobsctl run -a demo -- sh -c 'uname -a'"
echo "  $jobsctl ps -a demo"
[[ -s "$state/jobs-dev.pid" ]] &&
    echo "dev-quickstart: stop jobs dev with: kill \$(cat $state/jobs-dev.pid)"
[[ "$code" == 3 ]]
