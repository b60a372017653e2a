#!/usr/bin/env bash
# From a fresh Debian machine to a first job: installs and starts the
# services (deploy/setup.sh), builds the binaries, starts jobs-api and one
# jobs-worker on this machine, creates the app `demo` from the local busybox
# test image, and runs a first job, showing its output and exit code.
#
# The API and the worker keep running in the background afterwards; their
# logs are in target/quickstart/. `jobs dev` (one process, no services) will
# replace this script's service half.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash deploy/setup.sh
cargo build --workspace --bins

state=target/quickstart
mkdir -p "$state"
token_file="$state/admin-token"
[[ -s "$token_file" ]] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token_file"

export JOBS_DATABASE_URL="postgres://jobs:jobs@127.0.0.1:5432/jobs_quickstart"
export JOBS_ADMIN_TOKEN="$(cat "$token_file")"
export JOBS_TOKEN="$JOBS_ADMIN_TOKEN"
export JOBS_API_URL="http://127.0.0.1:8420"
export JOBS_APP=demo
# Uploads and artifacts, shared by the API and the worker of this one host.
export JOBS_OBJECT_STORE="file://$PWD/$state/objects"

PGPASSWORD=jobs psql -X -q -h 127.0.0.1 -U jobs -d postgres -Atc \
    "select 1 from pg_database where datname = 'jobs_quickstart'" | grep -q 1 ||
    PGPASSWORD=jobs createdb -h 127.0.0.1 -U jobs jobs_quickstart

api_up() { target/debug/jobsctl apps list >/dev/null 2>&1 </dev/null; }
if ! api_up; then
    echo "quickstart: starting jobs-api and jobs-worker (logs in $state/)"
    nohup target/debug/jobs-api >"$state/api.out" 2>"$state/api.log" &
    nohup target/debug/jobs-worker >"$state/worker.out" 2>"$state/worker.log" &
    for _ in $(seq 1 100); do
        api_up && grep -q ready "$state/worker.out" && break
        sleep 0.2
    done
fi

target/debug/jobsctl apps show demo >/dev/null 2>&1 </dev/null ||
    target/debug/jobsctl apps create demo --image jobs-test/busybox:latest -e GREETING=hello >/dev/null </dev/null

echo "quickstart: jobsctl run -- sh -c 'echo \$GREETING from a one-off container; exit 3'"
set +e
target/debug/jobsctl run -- sh -c 'echo $GREETING from a one-off container; exit 3' </dev/null
code=$?
set -e
echo "quickstart: the job exited with code $code (expected 3)"
echo "quickstart: try it yourself:"
echo "  export JOBS_API_URL=$JOBS_API_URL JOBS_TOKEN=\$(cat $token_file) JOBS_APP=demo"
echo "  target/debug/jobsctl run -- sh -c 'uname -a'"
[[ "$code" == 3 ]]
