#!/usr/bin/env python3
"""Benchmarks of queued runs, against the real baseline on this machine.

Starts its own jobs-api and jobs-worker (release build) on a fresh database
and queue, then measures:

- overhead: `jobs run -- true` against `docker run --rm IMAGE true`, same
  image, interleaved, N runs each; prints the medians and their ratio;
- log throughput: a job writing SIZE MB to stdout; prints the MB/s that
  reach PostgreSQL (bytes stored / time from `running` to the end) and the
  worker's peak RSS (VmHWM).

Usage: python3 bench/run.py [--runs 20] [--megabytes 200]
Needs: deploy/setup.sh done, `cargo build --release --bins`.
"""

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
IMAGE = "jobs-test/busybox:latest"
PG = "postgres://jobs:jobs@127.0.0.1:5432"


def psql(db, sql):
    out = subprocess.run(
        ["psql", "-X", "-Atq", f"{PG}/{db}", "-c", sql],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


def start(cmd, env, marker):
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=open(f"/tmp/bench-{os.path.basename(cmd[0])}.log", "w"), text=True)
    line = proc.stdout.readline()
    if marker not in line:
        sys.exit(f"{cmd[0]} did not start: {line!r}")
    return proc, line.strip()


def timed(cmd, env):
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{cmd} failed with {done.returncode}: {done.stderr.decode()}")
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--megabytes", type=int, default=200)
    args = parser.parse_args()

    db = "jobs_bench_" + uuid.uuid4().hex[:12]
    psql("postgres", f"create database {db}")
    token = secrets.token_hex(32)
    env = dict(os.environ)
    env.update({
        "JOBS_DATABASE_URL": f"{PG}/{db}",
        "JOBS_AMQP_QUEUE": "jobs.bench." + db,
        "JOBS_ADMIN_TOKEN": token,
        "JOBS_LISTEN": "127.0.0.1:0",
        "JOBS_WORKER_ID": "bench-" + db,
        "JOBS_WORKER_SLOTS": "4",
        "RUST_LOG": "warn",
    })
    api, line = start([os.path.join(BIN, "jobs-api")], env, "listening on")
    env["JOBS_API_URL"] = "http://" + line.split()[-1]
    worker, _ = start([os.path.join(BIN, "jobs-worker")], env, "ready")
    env["JOBS_TOKEN"] = token
    env["JOBS_APP"] = "bench"
    jobs = os.path.join(BIN, "jobs")
    try:
        subprocess.run([jobs, "apps", "create", "bench", "--image", IMAGE], env=env, check=True, capture_output=True)
        # Warm both paths once so that neither pays a cold cache.
        timed([jobs, "run", "--", "true"], env)
        timed(["docker", "run", "--rm", IMAGE, "true"], env)

        ours, docker = [], []
        for _ in range(args.runs):
            ours.append(timed([jobs, "run", "--", "true"], env))
            docker.append(timed(["docker", "run", "--rm", IMAGE, "true"], env))
        m_ours, m_docker = statistics.median(ours), statistics.median(docker)
        print(f"overhead: runs={args.runs} each, interleaved")
        print(f"  jobs run -- true           median {m_ours*1000:.0f} ms  (min {min(ours)*1000:.0f}, max {max(ours)*1000:.0f})")
        print(f"  docker run --rm IMAGE true median {m_docker*1000:.0f} ms  (min {min(docker)*1000:.0f}, max {max(docker)*1000:.0f})")
        print(f"  ratio of medians: {m_ours/m_docker:.2f}x")

        size = args.megabytes * 1000 * 1000
        cmd = f"yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ | head -c {size}"
        job_id = subprocess.run([jobs, "run", "-d", "--", cmd], env=env, check=True, capture_output=True, text=True).stdout.strip()
        subprocess.run([jobs, "wait", job_id], env=env, check=True)
        stored = int(psql(db, f"select sum(octet_length(data)) from job_logs where job_id = '{job_id}'"))
        seconds = float(psql(db, f"select extract(epoch from finished_at - started_at) from jobs where id = '{job_id}'"))
        with open(f"/proc/{worker.pid}/status") as status:
            hwm = next(l for l in status if l.startswith("VmHWM")).split()[1]
        print(f"log throughput: {stored} bytes stored in {seconds:.2f} s = {stored/seconds/1e6:.1f} MB/s")
        print(f"  worker peak RSS (VmHWM): {int(hwm)/1024:.1f} MiB")
        assert stored == size, f"stored {stored} bytes, expected {size}"
    finally:
        worker.terminate()
        api.terminate()
        worker.wait()
        api.wait()
        psql("postgres", f"drop database {db} with (force)")


if __name__ == "__main__":
    main()
