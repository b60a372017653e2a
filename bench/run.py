#!/usr/bin/env python3
"""Benchmarks of queued runs, against the real baseline on this machine.

Starts its own jobs-api and jobs-worker (release build) on a fresh database
and queue, then measures:

- overhead: `jobs run -- true` against `docker run --rm IMAGE true`, same
  image, interleaved, N runs each; prints the medians and their ratio;
- log throughput: a job writing SIZE MB to stdout; prints the MB/s that
  reach PostgreSQL (bytes stored / time from `running` to the end) and the
  worker's peak RSS (VmHWM).

With --interactive, interactive runs instead (direct attach, no queue),
against Docker's own attach, same image, interleaved, N runs each:

- `jobs run -i -- true` (stdin from /dev/null) to its exit, against
  `docker run --rm -i IMAGE true`;
- `jobs run -- sh` started on a pseudo-terminal to its first prompt, against
  `docker run --rm -it IMAGE sh` likewise (the time to the first output
  byte is printed too); each shell is then left with `exit`.

With --dev, the same against `jobs dev` (one process, SQLite, in-process
queue) on a fresh data dir, plus its start-up time: from spawn to its ready
line `listening on ADDR`, first on the fresh data dir, then restarts on it.
Throughput is then what reaches SQLite, checked by reading the logs back,
and the peak RSS is the whole `jobs dev` process's.

With --uploads, uploads and artifacts instead, on jobs-api + jobs-worker
with the object store of --store (s3: moto of deploy/setup.sh, a fresh
bucket; file: a fresh directory):

- upload throughput: `jobs run -d -f FILE -- true` of a SIZE MB file (the
  CLI streams it to the API, which streams it into the store), against
  `cp` of the same file on the same disk in the same run;
- download throughput: the worker collects the file back as an artifact
  (`--artifact /tmp/uploads/FILE`), then `jobs artifacts ID -o DIR`
  streams and extracts it, again against `cp`;
- the extra start latency of one small upload: `jobs run -- true` against
  `jobs run -f small.txt -- true`, interleaved, N runs each.

With --warm N, runs through the warm pool (an app with `--warm N`):
`jobs run -- true` with the pool and without it, against `docker run --rm
IMAGE true` and `docker exec CONTAINER true` into a running container of
the same image, interleaved, median and p90; `jobs run -i -- true` the
same against `docker run --rm -i IMAGE true`; and from spawn to the first
line of `jobs run -- echo hi`, with and without the pool. Before each
measured command the pool is refilled, so every warm run finds one waiting.

With --all, every figure of issue 13 on ONE jobs-api + jobs-worker pair,
each against its baseline in the same run, then a table of them written
between `<!-- bench:all:start -->` and `<!-- bench:all:end -->` in
docs/benchmarks.md (--only NAME,... runs some of them and writes nothing):

1. overhead: `jobs run -- true` against `docker run --rm IMAGE true`,
   interleaved, median and p90; and through a warm pool (the --warm
   measurement above, pool of 2 unless --warm says otherwise);
2. throughput: N `jobs run -d -- true` (500; --quick 100) submitted from 8
   threads on the worker's 4 slots, from the first submit to the last
   `finished_at`, against `xargs -P 4` of `docker run --rm IMAGE true`;
3. submit-rate: POST /v1/apps/APP/jobs at --rate per second (500) for 10 s
   (--quick 3 s) from Python threads on keep-alive connections, RabbitMQ
   confirms on, the worker stopped (jobs just queue); against GET /healthz
   at the same rate from the same generator. Runs first, before the worker
   starts, and its jobs are canceled and its wake-ups purged after it;
4. first-line: from spawn to the first line of `jobs run -- echo hi`, with
   and without the pool (from the measurement of 1), against `docker run
   --rm IMAGE echo hi`;
5. follow: a job printing its clock every 50 ms, 200 lines, read through
   `jobs follow ID`: arrival minus printed time, against the same script
   under `docker run` (same host clock);
6. logs: log ingest MB/s into PostgreSQL against Docker's own attach
   stream, and the RSS of the worker and the API, idle and under it;
7. control-plane: 100,000 jobs with --scale-gb (10; --quick 10,000 jobs and
   0.2 GB) of logs put into the database with SQL, then `jobs list`, `jobs
   status ID` and the last 100 lines of a big job's log, median of 20 each,
   against the same commands before the fill; and the database's size per
   stored log byte. Needs 3x the log volume free on PostgreSQL's disk.

Usage: python3 bench/run.py [--dev] [--interactive] [--warm N] [--runs 20] [--megabytes 200] [--starts 10]
       python3 bench/run.py --uploads [--store s3|file] [--runs 20] [--megabytes 1024]
       python3 bench/run.py --all [--quick] [--runs 20] [--only NAME,...] [--scale-gb 10] [--rate 500] [--no-docs]
Needs: deploy/setup.sh done, `cargo build --release --bins`.
"""

import argparse
import concurrent.futures
import datetime
import fcntl
import http.client
import itertools
import os
import json
import select
import socket
import struct
import termios
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
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


def measure_overhead(jobs, env, runs):
    """`jobs run -- true` and `docker run --rm IMAGE true`, interleaved;
    returns the two lists of seconds."""
    # Warm both paths once so that neither pays a cold cache.
    timed([jobs, "run", "--", "true"], env)
    timed(["docker", "run", "--rm", IMAGE, "true"], env)

    ours, docker = [], []
    for _ in range(runs):
        ours.append(timed([jobs, "run", "--", "true"], env))
        docker.append(timed(["docker", "run", "--rm", IMAGE, "true"], env))
    m_ours, m_docker = statistics.median(ours), statistics.median(docker)
    print(f"overhead: runs={runs} each, interleaved")
    print(f"  jobs run -- true           median {m_ours*1000:.0f} ms  p90 {percentile(ours, 0.9)*1000:.0f} ms"
          f"  (min {min(ours)*1000:.0f}, max {max(ours)*1000:.0f})")
    print(f"  docker run --rm IMAGE true median {m_docker*1000:.0f} ms  p90 {percentile(docker, 0.9)*1000:.0f} ms"
          f"  (min {min(docker)*1000:.0f}, max {max(docker)*1000:.0f})")
    print(f"  ratio of medians: {m_ours/m_docker:.2f}x")
    return ours, docker


def percentile(samples, q):
    """The sample of rank q (0 to 1) among the sorted samples, nearest rank:
    percentile(s, 0.5) is a median, percentile(s, 0.9) the p90."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def warm_waiting(worker_id):
    """The warm containers of `worker_id` that no job took yet."""
    out = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=jobs.worker_id={worker_id}",
         "--filter", "label=jobs.warm", "--filter", "name=^jobs-warm-"],
        check=True, capture_output=True, text=True).stdout
    return len(out.split())


def wait_for_pool(worker_id, count, timeout=60):
    deadline = time.perf_counter() + timeout
    while warm_waiting(worker_id) != count:
        if time.perf_counter() > deadline:
            sys.exit(f"the warm pool did not get to {count} within {timeout} s")
        time.sleep(0.05)


def first_line_seconds(cmd, env):
    """Seconds from spawn to the first line on stdout; then to the end."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = proc.stdout.readline()
    first = time.perf_counter() - t0
    proc.stdout.read()
    if proc.wait() != 0 or not line:
        sys.exit(f"{cmd} failed or printed nothing")
    return first


def measure_warm(jobs, env, runs, worker_id, pool):
    """`jobs run -- true` through the warm pool and without it, against
    `docker run --rm` and `docker exec` into a running container of the
    same image, interleaved; before each measured command the pool is
    back to full, so each warm run finds a container waiting. Returns the
    seconds of each command by its label."""
    subprocess.run([jobs, "apps", "create", "warm", "--image", IMAGE, "--warm", str(pool)], env=env, check=True, capture_output=True)
    wait_for_pool(worker_id, pool)
    target = subprocess.run(["docker", "run", "-d", "--rm", IMAGE, "sleep", "3600"], check=True, capture_output=True, text=True).stdout.strip()
    commands = {
        "jobs run -- true (warm pool)": [jobs, "run", "-a", "warm", "--", "true"],
        "jobs run -- true (no pool)": [jobs, "run", "-a", "bench", "--", "true"],
        "docker run --rm IMAGE true": ["docker", "run", "--rm", IMAGE, "true"],
        "docker exec CONTAINER true": ["docker", "exec", target, "true"],
        # Interactive runs (stdin attached, here /dev/null) take the pool too.
        "jobs run -i -- true (warm pool)": [jobs, "run", "-a", "warm", "-i", "--", "true"],
        "jobs run -i -- true (no pool)": [jobs, "run", "-a", "bench", "-i", "--", "true"],
        "docker run --rm -i IMAGE true": ["docker", "run", "--rm", "-i", IMAGE, "true"],
    }
    first_lines = {
        "jobs run -- echo hi (warm pool)": [jobs, "run", "-a", "warm", "--", "echo", "hi"],
        "jobs run -- echo hi (no pool)": [jobs, "run", "-a", "bench", "--", "echo", "hi"],
        "docker run --rm IMAGE echo hi": ["docker", "run", "--rm", IMAGE, "echo", "hi"],
    }
    try:
        for cmd in list(commands.values()) + list(first_lines.values()):
            wait_for_pool(worker_id, pool)
            timed(cmd, env)
        times = {label: [] for label in list(commands) + list(first_lines)}
        for _ in range(runs):
            for label, cmd in commands.items():
                wait_for_pool(worker_id, pool)
                times[label].append(timed(cmd, env))
            for label, cmd in first_lines.items():
                wait_for_pool(worker_id, pool)
                times[label].append(first_line_seconds(cmd, env))
    finally:
        subprocess.run(["docker", "rm", "-f", target], capture_output=True)
    docker_run = statistics.median(times["docker run --rm IMAGE true"])
    docker_exec = statistics.median(times["docker exec CONTAINER true"])
    print(f"warm pool (pool of {pool}, refilled before each command): runs={runs} each, interleaved")
    for label, samples in times.items():
        median = statistics.median(samples)
        print(f"  {label:<34} median {median*1000:4.0f} ms  p90 {percentile(samples, 0.9)*1000:4.0f} ms"
              f"  {median/docker_run:.2f}x docker run, {median/docker_exec:.2f}x docker exec")
    return times


def print_comparison(title, ours_label, ours, docker_label, docker):
    m_ours, m_docker = statistics.median(ours), statistics.median(docker)
    width = max(len(ours_label), len(docker_label))
    print(title)
    print(f"  {ours_label:<{width}}  median {m_ours*1000:.0f} ms  (min {min(ours)*1000:.0f}, max {max(ours)*1000:.0f})")
    print(f"  {docker_label:<{width}}  median {m_docker*1000:.0f} ms  (min {min(docker)*1000:.0f}, max {max(docker)*1000:.0f})")
    print(f"  ratio of medians: {m_ours/m_docker:.2f}x")


PROMPT_TIMEOUT = 60


def ends_with_prompt(output):
    """A shell prompt (`# ` or `$ `) at the end, maybe followed by the
    terminal controls busybox's line editor sends (ESC [ 6 n, ESC [ J)."""
    text = output
    while True:
        stripped = text
        for control in (b"\x1b[6n", b"\x1b[J", b"\x1b[K"):
            if stripped.endswith(control):
                stripped = stripped[: -len(control)]
        if stripped == text:
            break
        text = stripped
    return text.endswith(b"# ") or text.endswith(b"$ ")


def time_to_prompt(cmd, env):
    """Starts `cmd` on a new pseudo-terminal (24x80, its controlling
    terminal) and returns the seconds to its first output byte and to its
    first prompt; then types `exit` and waits for it to end."""
    master, slave = os.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))

    def controlling_terminal():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=slave, stdout=slave, stderr=slave,
                            preexec_fn=controlling_terminal, close_fds=True)
    os.close(slave)
    output, first_byte, prompt = b"", None, None
    try:
        while prompt is None:
            remaining = PROMPT_TIMEOUT - (time.perf_counter() - t0)
            if remaining <= 0 or not select.select([master], [], [], remaining)[0]:
                sys.exit(f"{cmd} showed no prompt within {PROMPT_TIMEOUT} s: {output!r}")
            try:
                chunk = os.read(master, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                sys.exit(f"{cmd} ended before its prompt: {output!r}")
            now = time.perf_counter()
            if first_byte is None:
                first_byte = now - t0
            output += chunk
            if ends_with_prompt(output):
                prompt = now - t0
        os.write(master, b"exit\r")
        # Keep reading, so the shell never blocks on a full terminal.
        deadline = time.perf_counter() + PROMPT_TIMEOUT
        while proc.poll() is None and time.perf_counter() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    os.read(master, 65536)
                except OSError:
                    pass
        if proc.poll() is None:
            proc.kill()
            sys.exit(f"{cmd} did not exit after `exit`")
        if proc.returncode != 0:
            sys.exit(f"{cmd} exited {proc.returncode} after `exit`: {output!r}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return first_byte, prompt


def measure_interactive(jobs, env, runs):
    # Warm both paths once so that neither pays a cold cache.
    timed([jobs, "run", "-i", "--", "true"], env)
    timed(["docker", "run", "--rm", "-i", IMAGE, "true"], env)
    ours, docker = [], []
    for _ in range(runs):
        ours.append(timed([jobs, "run", "-i", "--", "true"], env))
        docker.append(timed(["docker", "run", "--rm", "-i", IMAGE, "true"], env))
    print_comparison(f"interactive run to exit, stdin /dev/null: runs={runs} each, interleaved",
                     "jobs run -i -- true", ours, "docker run --rm -i IMAGE true", docker)

    ours_cmd = [jobs, "run", "--", "sh"]
    docker_cmd = ["docker", "run", "--rm", "-it", IMAGE, "sh"]
    time_to_prompt(ours_cmd, env)
    time_to_prompt(docker_cmd, env)
    ours_first, ours_prompt, docker_first, docker_prompt = [], [], [], []
    for _ in range(runs):
        first, prompt = time_to_prompt(ours_cmd, env)
        ours_first.append(first)
        ours_prompt.append(prompt)
        first, prompt = time_to_prompt(docker_cmd, env)
        docker_first.append(first)
        docker_prompt.append(prompt)
    print_comparison(f"shell on a pty to its first prompt: runs={runs} each, interleaved",
                     "jobs run -- sh", ours_prompt, "docker run --rm -it IMAGE sh", docker_prompt)
    print_comparison("  the same, to the first output byte",
                     "jobs run -- sh", ours_first, "docker run --rm -it IMAGE sh", docker_first)


def log_command(size):
    return f"yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ | head -c {size}"


def docker_attach_baseline(megabytes):
    """The same output through a raw `docker run` attach into `wc -c`, timed
    in the same run: the speed of Docker's own stream on this machine now."""
    size = megabytes * 1000 * 1000
    t0 = time.perf_counter()
    out = subprocess.run(
        f"docker run --rm --log-driver none {IMAGE} sh -c '{log_command(size)}' | wc -c",
        shell=True, check=True, capture_output=True, text=True,
    ).stdout.strip()
    seconds = time.perf_counter() - t0
    assert int(out) == size, f"docker gave {out} bytes, expected {size}"
    print(f"  baseline, same run: docker run --rm IMAGE … | wc -c moved {size} bytes in {seconds:.2f} s = {size/seconds/1e6:.1f} MB/s")
    return size / seconds / 1e6


def start_log_job(jobs, env, megabytes):
    size = megabytes * 1000 * 1000
    cmd = log_command(size)
    job_id = subprocess.run([jobs, "run", "-d", "--", cmd], env=env, check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([jobs, "wait", job_id], env=env, check=True)
    return job_id, size


def rss_mib(pid, field="VmRSS"):
    """A memory figure of /proc/PID/status in MiB: VmRSS now, VmHWM the peak."""
    with open(f"/proc/{pid}/status") as status:
        kib = next(l for l in status if l.startswith(field + ":")).split()[1]
    return int(kib) / 1024


def peak_rss_mib(pid):
    return rss_mib(pid, "VmHWM")


class RssSampler:
    """Samples the VmRSS of some processes every 20 ms while in a `with`;
    `peak[pid]` is then the largest seen."""

    def __init__(self, *pids):
        self.peak = {pid: rss_mib(pid) for pid in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.02):
            for pid in self.peak:
                self.peak[pid] = max(self.peak[pid], rss_mib(pid))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def profile_ingest(args):
    """Runs the worker under `valgrind --tool=callgrind` while one job
    writes --megabytes to stdout, stops it (callgrind writes its counts at
    exit), and prints the instructions per stored MB and the functions
    that take the most of them. Instruction counts are the same from run
    to run, whatever else the machine does. Counting starts once the
    worker is ready (`callgrind_control -i on`): its start-up is left out."""
    out = f"/tmp/callgrind.jobs-worker.{os.getpid()}"
    wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--instr-atstart=no"]
    with Servers(worker_wrapper=wrapper) as servers:
        servers.create_app("bench")
        subprocess.run(["callgrind_control", "-i", "on", str(servers.worker.pid)], check=True, capture_output=True)
        job_id, size = start_log_job(servers.jobs, servers.env, args.megabytes)
        stored, _ = stored_log(servers, job_id)
        assert stored == size, f"stored {stored} bytes, expected {size}"
        servers.stop_worker()
    annotated = subprocess.run(["callgrind_annotate", out], check=True, capture_output=True, text=True).stdout
    total = next(int(line.split()[0].replace(",", "")) for line in annotated.splitlines()
                 if line.strip().endswith("PROGRAM TOTALS"))
    print(f"worker under callgrind: {stored} bytes of one job's output stored; "
          f"{total:,} instructions from the job's submission on, {total / (stored / 1e6):,.0f} per stored MB")
    print(f"  counts in {out}; the top of `callgrind_annotate {out}`:")
    lines = annotated.splitlines()
    start_at = next(i for i, line in enumerate(lines) if "file:function" in line)
    for line in lines[start_at + 2:start_at + 27]:
        print("  " + line[:200])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--dev", action="store_true", help="measure `jobs dev` instead of jobs-api + jobs-worker")
    parser.add_argument("--starts", type=int, default=10, help="with --dev: how many restarts to time")
    parser.add_argument("--interactive", action="store_true", help="measure interactive runs (direct attach) instead")
    parser.add_argument("--uploads", action="store_true", help="measure uploads and artifacts")
    parser.add_argument("--warm", type=int, default=0, metavar="N",
                        help="measure runs through a warm pool of N against no pool, docker run and docker exec "
                             "(with --all: the pool's size, 2 by default)")
    parser.add_argument("--store", choices=["s3", "file"], default="s3", help="with --uploads: the object store")
    parser.add_argument("--all", action="store_true",
                        help="every figure of issue 13 on one jobs-api + jobs-worker, then rewrite the table in docs/benchmarks.md")
    parser.add_argument("--only", metavar="NAME,...",
                        help="with or without --all: only these figures (" + ", ".join(FIGURES) + "); docs are left alone")
    parser.add_argument("--quick", action="store_true",
                        help="with --all: smaller volumes (100 jobs for throughput, 3 s of submits, 10,000 jobs and 0.2 GB of logs)")
    parser.add_argument("--scale-gb", type=float, default=None,
                        help="with --all: GB of logs in the control-plane figure (10; 0.2 with --quick)")
    parser.add_argument("--rate", type=int, default=500, help="with --all: the submit rate, jobs per second")
    parser.add_argument("--no-docs", action="store_true", help="with --all: print the table, leave docs/benchmarks.md alone")
    parser.add_argument("--profile-ingest", action="store_true",
                        help="the worker under callgrind while it stores --megabytes of one job's output: "
                             "instructions per stored MB and the functions that take them")
    args = parser.parse_args()
    if args.profile_ingest:
        profile_ingest(args)
    elif args.all or args.only:
        all_main(args)
    elif args.uploads:
        uploads_main(args)
    elif args.dev:
        dev_main(args)
    else:
        servers_main(args)


class Servers:
    """A jobs-api and a jobs-worker (4 slots) of the release build, on a
    fresh database and queue; `env` is the CLI's environment (app `bench`,
    the admin token), `jobs` the CLI. The worker may be started later, or
    stopped and started again (same id, same queue). `close` stops both,
    drops the database and deletes the queue."""

    def __init__(self, extra_env=None, worker=True, worker_wrapper=()):
        self.worker_wrapper = list(worker_wrapper)
        self.db = "jobs_bench_" + uuid.uuid4().hex[:12]
        self.queue = "jobs.bench." + self.db
        self.worker_id = "bench-" + self.db
        self.token = secrets.token_hex(32)
        self.jobs = os.path.join(BIN, "jobs")
        self.api = self.worker = None
        psql("postgres", f"create database {self.db}")
        self.server_env = dict(os.environ)
        self.server_env.update({
            # The database is on this host: no TLS to it, as a single-host
            # deployment would have it (docs/operations.md, "PostgreSQL").
            "JOBS_DATABASE_URL": f"{PG}/{self.db}?sslmode=disable",
            "JOBS_AMQP_QUEUE": self.queue,
            "JOBS_ADMIN_TOKEN": self.token,
            "JOBS_LISTEN": "127.0.0.1:0",
            "JOBS_WORKER_ID": self.worker_id,
            "JOBS_WORKER_SLOTS": "4",
            "RUST_LOG": os.environ.get("BENCH_RUST_LOG", "warn"),
        })
        self.server_env.update(extra_env or {})
        try:
            self.api, line = start([os.path.join(BIN, "jobs-api")], self.server_env, "listening on")
            self.address = line.split()[-1]
            self.server_env["JOBS_API_URL"] = "http://" + self.address
            self.env = dict(self.server_env, JOBS_TOKEN=self.token, JOBS_APP="bench")
            if worker:
                self.start_worker()
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def start_worker(self):
        if self.worker is None:
            self.worker, _ = start(self.worker_wrapper + [os.path.join(BIN, "jobs-worker")], self.server_env, "ready")
        return self.worker

    def stop_worker(self):
        if self.worker is not None:
            self.worker.terminate()
            self.worker.wait()
            self.worker = None

    def cli(self, *args, app=None):
        """Runs the CLI, checked; returns its stdout."""
        cmd = [self.jobs] + (["-a", app] if app else []) + list(args)
        return subprocess.run(cmd, env=self.env, check=True, capture_output=True, text=True).stdout.strip()

    def create_app(self, name, *options):
        self.cli("apps", "create", name, "--image", IMAGE, *options)

    def sql(self, query):
        return psql(self.db, query)

    def close(self):
        for proc in (self.worker, self.api):
            if proc is not None:
                proc.terminate()
        for proc in (self.worker, self.api):
            if proc is not None:
                proc.wait()
        self.worker = self.api = None
        psql("postgres", f"drop database if exists {self.db} with (force)")
        rabbitmqctl("delete_queue", self.queue)


def rabbitmqctl(*args):
    """Runs rabbitmqctl if this machine has it (the broker of deploy/setup.sh
    is local); returns whether it succeeded."""
    if shutil.which("rabbitmqctl") is None:
        return False
    try:
        return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=120).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def servers_main(args):
    with Servers() as servers:
        jobs, env, worker = servers.jobs, servers.env, servers.worker
        servers.create_app("bench")
        if args.interactive:
            measure_interactive(jobs, env, args.runs)
            return
        if args.warm:
            measure_warm(jobs, env, args.runs, servers.worker_id, args.warm)
            return
        measure_overhead(jobs, env, args.runs)

        job_id, size = start_log_job(jobs, env, args.megabytes)
        stored, seconds = stored_log(servers, job_id)
        print(f"log throughput: {stored} bytes stored in {seconds:.2f} s = {stored/seconds/1e6:.1f} MB/s")
        print(f"  worker peak RSS (VmHWM): {peak_rss_mib(worker.pid):.1f} MiB")
        docker_attach_baseline(args.megabytes)
        assert stored == size, f"stored {stored} bytes, expected {size}"


def stored_log(servers, job_id):
    """Bytes of the job's logs in PostgreSQL, and the seconds from its start to its end."""
    stored = int(servers.sql(f"select coalesce(sum(octet_length(data)), 0) from job_logs where job_id = '{job_id}'"))
    seconds = float(servers.sql(f"select extract(epoch from finished_at - started_at) from jobs where id = '{job_id}'"))
    return stored, seconds


def seconds_of(cmd, env):
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdin=subprocess.DEVNULL, capture_output=True)
    return time.perf_counter() - t0


def uploads_main(args):
    work = tempfile.mkdtemp(prefix="jobs-bench-uploads-", dir=os.path.join(ROOT, "target"))
    store_env = {}
    if args.store == "s3":
        bucket = "jobs-bench-" + uuid.uuid4().hex[:12]
        subprocess.run(["curl", "-fsS", "-X", "PUT", f"http://127.0.0.1:9000/{bucket}"], check=True, capture_output=True)
        store_env.update({
            "JOBS_OBJECT_STORE": f"s3://{bucket}/bench",
            "AWS_ENDPOINT": "http://127.0.0.1:9000", "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
        })
    else:
        store_env["JOBS_OBJECT_STORE"] = "file://" + os.path.join(work, "objects")
    try:
        with Servers(store_env) as servers:
            measure_uploads(args, servers, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure_uploads(args, servers, work):
    jobs, env, api, worker = servers.jobs, servers.env, servers.api, servers.worker
    size = args.megabytes * 1000 * 1000
    big = os.path.join(work, "big.bin")
    small = os.path.join(work, "small.txt")
    subprocess.run(["head", "-c", str(size), "/dev/urandom"], stdout=open(big, "wb"), check=True)
    with open(small, "w") as f:
        f.write("a small upload\n")
    subprocess.run([jobs, "apps", "create", "bench", "--image", IMAGE], env=env, check=True, capture_output=True)
    print(f"uploads and artifacts: store {args.store}, file {size} bytes, release build")

    cp = seconds_of(["cp", big, os.path.join(work, "copy.bin")], env)
    os.remove(os.path.join(work, "copy.bin"))
    print(f"  baseline, same run: cp of the file on the same disk {cp:.2f} s = {size/cp/1e6:.0f} MB/s")

    t0 = time.perf_counter()
    job_id = subprocess.run(
        [jobs, "run", "-d", "-f", big, "--artifact", "/tmp/uploads/big.bin", "--", "true"],
        env=env, check=True, capture_output=True, text=True).stdout.strip()
    upload = time.perf_counter() - t0
    print(f"  upload: jobs run -d -f FILE (CLI -> API -> store) {upload:.2f} s = {size/upload/1e6:.0f} MB/s")
    subprocess.run([jobs, "wait", job_id], env=env, check=True, capture_output=True)
    status = json.loads(subprocess.run([jobs, "status", job_id, "--json"], env=env, check=True, capture_output=True).stdout)
    in_worker = parse_time(status["finished_at"]) - parse_time(status["created_at"])
    print(f"  worker: store -> container, run, container -> store (artifact): {in_worker:.2f} s from create to end")
    out = os.path.join(work, "out")
    download = seconds_of([jobs, "artifacts", job_id, "-o", out], env)
    assert os.path.getsize(os.path.join(out, "big.bin")) == size
    print(f"  download: jobs artifacts ID -o DIR (store -> API -> CLI, extracted) {download:.2f} s = {size/download/1e6:.0f} MB/s")
    print(f"  peak RSS (VmHWM): api {peak_rss_mib(api.pid):.0f} MiB, worker {peak_rss_mib(worker.pid):.0f} MiB")

    seconds_of([jobs, "run", "--", "true"], env)
    seconds_of([jobs, "run", "-f", small, "--", "true"], env)
    plain, with_file = [], []
    for _ in range(args.runs):
        plain.append(seconds_of([jobs, "run", "--", "true"], env))
        with_file.append(seconds_of([jobs, "run", "-f", small, "--", "true"], env))
    m_plain, m_file = statistics.median(plain), statistics.median(with_file)
    print(f"  start latency: runs={args.runs} each, interleaved")
    print(f"    jobs run -- true              median {m_plain*1000:.0f} ms")
    print(f"    jobs run -f small.txt -- true median {m_file*1000:.0f} ms  (+{(m_file-m_plain)*1000:.0f} ms)")


def start_dev(jobs, env, data_dir):
    """Starts `jobs dev` and returns it with the seconds from spawn to its ready line."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [jobs, "dev", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--slots", "4"],
        env=env, stdout=subprocess.PIPE, stderr=open("/tmp/bench-jobs-dev.log", "a"), text=True,
    )
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - t0
    if not line.startswith("listening on "):
        sys.exit(f"jobs dev did not start: {line!r} (see /tmp/bench-jobs-dev.log)")
    return proc, line.split()[-1], elapsed


def stop_dev(proc):
    proc.terminate()
    proc.wait()


def dev_main(args):
    jobs = os.path.join(BIN, "jobs")
    root = tempfile.mkdtemp(prefix="jobs-bench-dev-")
    data_dir = os.path.join(root, "data")
    # The environment of a machine with no setup: no JOBS_* variables, a
    # home of its own. The CLI gets the address and the data dir only; its
    # token comes from the file jobs dev writes.
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBS_")}
    env.update({"HOME": root, "XDG_DATA_HOME": os.path.join(root, "xdg"), "JOBS_DEV_DATA_DIR": data_dir})
    env.pop("RUST_LOG", None)
    open("/tmp/bench-jobs-dev.log", "w").close()
    try:
        proc, _, first = start_dev(jobs, env, data_dir)
        stop_dev(proc)
        restarts = []
        for _ in range(args.starts):
            proc, _, elapsed = start_dev(jobs, env, data_dir)
            restarts.append(elapsed)
            stop_dev(proc)
        print("jobs dev start-up: spawn to the ready line `listening on ADDR`")
        print(f"  first start, fresh data dir  {first*1000:.0f} ms")
        print(f"  restart, runs={args.starts}           median {statistics.median(restarts)*1000:.0f} ms  (min {min(restarts)*1000:.0f}, max {max(restarts)*1000:.0f})")

        proc, address, _ = start_dev(jobs, env, data_dir)
        env["JOBS_API_URL"] = f"http://{address}"
        try:
            subprocess.run([jobs, "apps", "create", "bench", "--image", IMAGE], env=env, check=True, capture_output=True)
            # No JOBS_APP: the only app of jobs dev is the one meant, as for a user.
            if args.interactive:
                measure_interactive(jobs, env, args.runs)
                return
            measure_overhead(jobs, env, args.runs)

            job_id, size = start_log_job(jobs, env, args.megabytes)
            status = json.loads(subprocess.run([jobs, "status", job_id, "--json"], env=env, check=True, capture_output=True).stdout)
            seconds = (parse_time(status["finished_at"]) - parse_time(status["started_at"]))
            stored = len(subprocess.run([jobs, "logs", job_id], env=env, check=True, capture_output=True).stdout)
            print(f"log throughput: {stored} bytes stored in {seconds:.2f} s = {stored/seconds/1e6:.1f} MB/s")
            print(f"  jobs dev peak RSS (VmHWM): {peak_rss_mib(proc.pid):.1f} MiB")
            print(f"  database file size: {dir_size(data_dir)/1e6:.0f} MB")
            docker_attach_baseline(args.megabytes)
            assert stored == size, f"stored {stored} bytes, expected {size}"
        finally:
            stop_dev(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def parse_time(text):
    """Seconds since the epoch of an RFC 3339 timestamp as the API writes it."""
    from datetime import datetime
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def dir_size(path):
    return sum(os.path.getsize(os.path.join(path, name)) for name in os.listdir(path))


# --- --all: every figure of issue 13 on one jobs-api + jobs-worker ------------

DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
DOCS_START = "<!-- bench:all:start -->"
DOCS_END = "<!-- bench:all:end -->"
TERMINAL_STATES = "('succeeded', 'failed', 'canceled', 'timed_out', 'lost')"


class Row:
    """One line of the summary table."""

    def __init__(self, figure, ours, baseline="—", ratio="—", target="—", verdict="—"):
        self.figure, self.ours, self.baseline = figure, ours, baseline
        self.ratio, self.target, self.verdict = ratio, target, verdict


def verdict(met):
    return "met" if met else "**missed**"


def ms(seconds):
    return f"{seconds * 1000:.0f} ms"


def spread(samples, q):
    """`median X ms, pNN Y ms` of samples in seconds."""
    return f"median {ms(statistics.median(samples))}, p{round(q * 100)} {ms(percentile(samples, q))}"


class Bench:
    """What the figures share: the servers (one API, one worker started on
    first need), the parameters, and the warm-pool samples of figure 1,
    which figure 4 reads too."""

    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.runs = args.runs
        self.pool = args.warm or 2
        self.throughput_jobs = 100 if args.quick else 500
        self.submit_seconds = 3 if args.quick else 10
        self.follow_lines = 200
        self.scale_jobs = 10_000 if args.quick else 100_000
        self.scale_gb = args.scale_gb if args.scale_gb is not None else (0.2 if args.quick else 10.0)
        # Figure 2 has 500 active jobs and figure 3 queues RATE x SECONDS of
        # them with no worker: the per-app limit (10 by default) must allow
        # that. Figure 3 sends hundreds of requests per second with one
        # token: the per-token limit (50/s, bursts of 100) must allow that.
        self.max_active = max(1000, int(args.rate * (self.submit_seconds + SUBMIT_WARM_UP)) + 1000)
        self.api_env = {
            "JOBS_MAX_QUEUED_JOBS_PER_APP": str(self.max_active),
            "JOBS_RATE_LIMIT_PER_SECOND": "1000000",
            "JOBS_RATE_LIMIT_BURST": "1000000",
        }
        self.servers = Servers(self.api_env, worker=False)
        self.jobs, self.env = self.servers.jobs, self.servers.env
        try:
            self.servers.create_app("bench")
        except BaseException:
            self.servers.close()
            raise
        self._warm = None

    def need_worker(self):
        return self.servers.start_worker()

    def warm_samples(self):
        """measure_warm's samples, measured once: a pool of `pool` for the
        app `warm`, which is turned off afterwards so that no warm
        container stays up during the other figures."""
        if self._warm is None:
            self.need_worker()
            self._warm = measure_warm(self.jobs, self.env, self.runs, self.servers.worker_id, self.pool)
            self.servers.cli("apps", "set", "warm", "--warm", "0")
            wait_for_pool(self.servers.worker_id, 0)
        return self._warm

    def close(self):
        self.servers.close()


def fig_overhead(bench):
    """1. `jobs run -- true` against `docker run --rm IMAGE true`, without
    and with the warm pool."""
    bench.need_worker()
    ours, docker = measure_overhead(bench.jobs, bench.env, bench.runs)
    ratio = statistics.median(ours) / statistics.median(docker)
    warm = bench.warm_samples()
    pooled, docker_run = warm["jobs run -- true (warm pool)"], warm["docker run --rm IMAGE true"]
    warm_ratio = statistics.median(pooled) / statistics.median(docker_run)
    return [
        Row("1. dispatch overhead, no pool: `jobs run -- true`", spread(ours, 0.9),
            f"`docker run --rm IMAGE true`: {spread(docker, 0.9)}", f"{ratio:.2f}× (medians)",
            "≤ 1.0× docker run", verdict(ratio <= 1.0)),
        Row(f"1. dispatch overhead, warm pool of {bench.pool}: `jobs run -- true`", spread(pooled, 0.9),
            f"`docker run --rm IMAGE true`: {spread(docker_run, 0.9)}", f"{warm_ratio:.2f}× (medians)",
            "≤ 0.5× docker run", verdict(warm_ratio <= 0.5)),
    ]


def fig_throughput(bench):
    """2. N `jobs run -d -- true` from 8 threads on the worker's 4 slots,
    from the first submit to the last job's end, against `docker run --rm
    IMAGE true` 4 at a time over as many runs."""
    bench.need_worker()
    servers, n = bench.servers, bench.throughput_jobs
    servers.create_app("tput")
    cmd = [bench.jobs, "run", "-d", "-a", "tput", "--", "true"]

    def submit(_):
        return subprocess.run(cmd, env=bench.env, check=True, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True).stdout.strip()

    t0_wall, t0 = time.time(), time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(submit, range(n)))
    submitted = time.perf_counter() - t0
    deadline = t0 + 60 + n * 2
    while int(servers.sql(f"select count(*) from jobs where app = 'tput' and state in {TERMINAL_STATES}")) < n:
        if time.perf_counter() > deadline:
            sys.exit(f"throughput: the {n} jobs did not all end within {deadline - t0:.0f} s")
        time.sleep(0.1)
    polled = time.perf_counter() - t0
    # The end from the database (the worker's `finished_at`, same host
    # clock), not from the 100 ms poll.
    last_end = float(servers.sql("select extract(epoch from max(finished_at)) from jobs where app = 'tput'"))
    seconds = last_end - t0_wall
    succeeded = int(servers.sql("select count(*) from jobs where app = 'tput' and state = 'succeeded'"))
    assert len(set(ids)) == n, "a submit printed no id or a repeated one"

    t0 = time.perf_counter()
    subprocess.run(f"seq {n} | xargs -P 4 -I{{}} docker run --rm {IMAGE} true",
                   shell=True, check=True, capture_output=True)
    docker_seconds = time.perf_counter() - t0
    ours_rate, docker_rate = n / seconds, n / docker_seconds
    print(f"throughput: {n} x `jobs run -d -- true` from 8 threads, worker of 4 slots")
    print(f"  submitted in {submitted:.2f} s; all ended {seconds:.2f} s after the first submit"
          f" (seen by the poll at {polled:.2f} s) = {ours_rate:.1f} jobs/s; {succeeded}/{n} succeeded")
    print(f"  baseline, same run: seq {n} | xargs -P 4 docker run --rm IMAGE true: {docker_seconds:.2f} s = {docker_rate:.1f} runs/s")
    print(f"  ratio: {ours_rate/docker_rate:.2f}x")
    failed = "" if succeeded == n else f"; **{n - succeeded} did not succeed**"
    return [Row(f"2. sustained throughput: {n} × `jobs run -d -- true`, 8 submitters, 4 slots",
                f"{ours_rate:.1f} jobs/s ({seconds:.1f} s, first submit to last end){failed}",
                f"`docker run --rm IMAGE true`, 4 at a time: {docker_rate:.1f} runs/s ({docker_seconds:.1f} s)",
                f"{ours_rate/docker_rate:.2f}×", "none set", "—")]


def load(address, method, path, body, headers, rate, seconds, connections=64):
    """Sends `rate` requests per second for `seconds` on `connections`
    keep-alive connections (one thread each), open loop: request i is due
    at start + i / rate, whatever became of the others. Returns, for each
    request, (due, sent, answered, status)."""
    host, port = address.rsplit(":", 1)
    total = max(1, int(rate * seconds))
    results = [None] * total
    counter = itertools.count()
    # Every connection open before the first request is due; a sender
    # that cannot connect breaks the barrier for all.
    barrier = threading.Barrier(connections + 1, timeout=60)
    start_at = [0.0]

    def connect():
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def sender():
        conn = connect()
        barrier.wait()
        t0 = start_at[0]
        while True:
            i = next(counter)
            if i >= total:
                break
            due = t0 + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            sent = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as error:
                status = type(error).__name__
                conn.close()
                conn = connect()
            results[i] = (due, sent, time.perf_counter(), status)
        conn.close()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    start_at[0] = time.perf_counter() + 0.1
    barrier.wait()
    for thread in threads:
        thread.join()
    if None in results:
        sys.exit(f"the load generator stopped: {results.count(None)} of {total} requests not sent")
    return results


def load_summary(label, results, rate, expect):
    ok = [r for r in results if r[3] == expect]
    failed = len(results) - len(ok)
    latencies = [r[2] - r[1] for r in ok] or [float("nan")]
    from_due = [r[2] - r[0] for r in ok] or [float("nan")]
    span = max(r[2] for r in results) - min(r[1] for r in results)
    late = sum(1 for r in results if r[1] - r[0] > 0.005)
    achieved = len(ok) / span
    statuses = {}
    for r in results:
        if r[3] != expect:
            statuses[r[3]] = statuses.get(r[3], 0) + 1
    print(f"  {label}: {len(results)} requests, {failed} failed{' ' + str(statuses) if statuses else ''};"
          f" achieved {achieved:.0f}/s (target {rate}/s)")
    print(f"    latency from send: p50 {percentile(latencies, 0.5)*1000:.1f} ms,"
          f" p99 {percentile(latencies, 0.99)*1000:.1f} ms, max {max(latencies)*1000:.1f} ms;"
          f" from the due time: p99 {percentile(from_due, 0.99)*1000:.1f} ms;"
          f" sent over 5 ms late: {late}")
    third = len(ok) // 3
    if third >= 10:
        first, last = latencies[:third], latencies[-third:]
        print(f"    p99 over the first third {percentile(first, 0.99)*1000:.1f} ms, over the last third {percentile(last, 0.99)*1000:.1f} ms")
    return achieved, latencies, from_due, failed, late


SUBMIT_WARM_UP = 1  # second


def fig_submit_rate(bench):
    """3. POST /v1/apps/submit/jobs at `rate` per second, the worker
    stopped (the jobs queue, each confirmed by RabbitMQ before the answer),
    against GET /healthz at the same rate from the same generator."""
    servers, rate, seconds = bench.servers, bench.args.rate, bench.submit_seconds
    servers.stop_worker()
    servers.create_app("submit")
    headers = {"Authorization": f"Bearer {servers.token}", "Content-Type": "application/json"}
    body = json.dumps({"command": ["true"]}).encode()
    path = "/v1/apps/submit/jobs"
    # Not in the figure: the API's first publish (it connects to RabbitMQ
    # then), its database pool growing to the load, the first requests of
    # each connection. One second at the same rate, then the measurement.
    load(servers.address, "POST", path, body, headers, rate, SUBMIT_WARM_UP)
    print(f"submit rate: target {rate}/s for {seconds} s after {SUBMIT_WARM_UP} s of warm-up, {os.cpu_count()} cores"
          " shared by the generator, the API, PostgreSQL and RabbitMQ")
    base = load(servers.address, "GET", "/healthz", None, {}, rate, seconds)
    base_rate, base_lat, _, base_failed, _ = load_summary("baseline, GET /healthz", base, rate, 200)
    results = load(servers.address, "POST", path, body, headers, rate, seconds)
    achieved, latencies, from_due, failed, late = load_summary("POST /v1/apps/submit/jobs {\"command\":[\"true\"]}", results, rate, 201)
    queued = int(servers.sql("select count(*) from jobs where app = 'submit' and state = 'queued'"))
    print(f"    jobs queued in the database: {queued}")
    # Nothing may run them later: cancel them, and drop their wake-ups.
    servers.sql("update jobs set state = 'canceled', reason = 'canceled by bench/run.py after the submit-rate figure', "
                "finished_at = now(), updated_at = now() where app = 'submit' and state = 'queued'")
    if not rabbitmqctl("purge_queue", servers.queue):
        print("    (no rabbitmqctl: the worker will drop the wake-ups of these canceled jobs when it starts)")
    if base_rate < 0.95 * rate:
        print(f"    Python reached only {base_rate:.0f}/s against /healthz here: the generator, not the API, is the limit")
    # Judged on the p99 from each request's due time: when the API falls
    # behind, requests wait for a free connection before their send, and
    # the latency from the send alone would hide that wait.
    p99 = max(percentile(latencies, 0.99), percentile(from_due, 0.99))
    met = failed == 0 and achieved >= 0.95 * rate and p99 <= 0.020
    return [Row(f"3. API submit: `POST /v1/apps/APP/jobs` at {rate}/s for {seconds} s, confirms on, no worker",
                f"{achieved:.0f}/s achieved; from send p50 {percentile(latencies, 0.5)*1000:.1f} ms,"
                f" p99 {percentile(latencies, 0.99)*1000:.1f} ms; from due time p99 {percentile(from_due, 0.99)*1000:.1f} ms;"
                f" {failed} failed, {late} sent > 5 ms late",
                f"`GET /healthz`, same generator: {base_rate:.0f}/s; p50 {percentile(base_lat, 0.5)*1000:.1f} ms,"
                f" p99 {percentile(base_lat, 0.99)*1000:.1f} ms; {base_failed} failed",
                f"{p99 / percentile(base_lat, 0.99):.1f}× (p99)",
                f"p99 ≤ 20 ms (from due time) at {rate}/s, 0 failed", verdict(met))]


def fig_first_line(bench):
    """4. From spawn to the first line of `jobs run -- echo hi`, with and
    without the warm pool, against `docker run --rm IMAGE echo hi`."""
    warm = bench.warm_samples()
    docker = warm["docker run --rm IMAGE echo hi"]
    print(f"submit to first line: from spawn to the first line on stdout, runs={bench.runs} each (of the warm-pool measurement)")
    for label in ("jobs run -- echo hi (no pool)", "jobs run -- echo hi (warm pool)", "docker run --rm IMAGE echo hi"):
        samples = warm[label]
        print(f"  {label:<34} p50 {ms(statistics.median(samples))}, p99 {ms(percentile(samples, 0.99))}")
    rows = []
    for key, label, limit in (("no pool", "no pool", 0.400), ("warm pool", f"warm pool of {bench.pool}", 0.150)):
        samples = warm[f"jobs run -- echo hi ({key})"]
        p50, p99 = statistics.median(samples), percentile(samples, 0.99)
        met = p99 <= limit
        rows.append(Row(f"4. submit → first output line, {label}: `jobs run -- echo hi`",
                        f"p50 {ms(p50)}, p99 {ms(p99)}",
                        f"`docker run --rm IMAGE echo hi`: p50 {ms(statistics.median(docker))}, p99 {ms(percentile(docker, 0.99))}",
                        f"{p99 / percentile(docker, 0.99):.2f}× (p99)",
                        f"p99 ≤ {limit*1000:.0f} ms",
                        verdict(met) if met or p50 > limit else "**missed** (p50 met)"))
    return rows


def follow_script(lines, interval_ms=50):
    """Prints `I NANOSECONDS` (the container's real-time clock, which is
    the host's) every interval, after a second of quiet for the follower
    to connect. busybox's date has no %N; adjtimex reads the clock, its
    `tv_usec` in µs, or in ns when its status has STA_NANO (0x2000)."""
    return (f"sleep 1; i=0; while [ $i -lt {lines} ]; do "
            "adjtimex | awk -v i=$i '/status:/{n=int($2/8192)%2} /tv_sec/{s=$2} /tv_usec/{u=$2} "
            "END{if (n) printf \"%d %d%09d\\n\", i, s, u; else printf \"%d %d%06d000\\n\", i, s, u}'; "
            f"usleep {interval_ms * 1000}; i=$((i+1)); done")


def line_delays(cmd, env, lines):
    """Runs cmd, reads its stdout line by line; returns, per line, the
    seconds from the time printed in it to its arrival here."""
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    killer = threading.Timer(lines * 0.05 + 120, proc.kill)
    killer.start()
    delays = []
    try:
        for line in proc.stdout:
            arrived = time.clock_gettime_ns(time.CLOCK_REALTIME)
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                delays.append((arrived - int(parts[1])) / 1e9)
        proc.wait()
    finally:
        killer.cancel()
    if proc.returncode != 0 or len(delays) != lines:
        sys.exit(f"{cmd[:3]}… exited {proc.returncode} with {len(delays)} of {lines} timed lines")
    return delays


def fig_follow(bench):
    """5. A job prints its clock every 50 ms; `jobs follow ID` reads it:
    arrival minus printed time, against `docker run` of the same script."""
    bench.need_worker()
    lines = bench.follow_lines
    script = follow_script(lines)
    docker = line_delays(["docker", "run", "--rm", IMAGE, "sh", "-c", script], bench.env, lines)
    job_id = bench.servers.cli("run", "-d", "--", script)
    ours = line_delays([bench.jobs, "follow", job_id], bench.env, lines)
    print(f"follow latency: {lines} lines, one every 50 ms, printed time to arrival on the reader's stdout")
    print(f"  jobs follow ID                 p50 {ms(statistics.median(ours))}, p99 {ms(percentile(ours, 0.99))}, max {ms(max(ours))}")
    print(f"  docker run --rm IMAGE (attach) p50 {ms(statistics.median(docker))}, p99 {ms(percentile(docker, 0.99))}, max {ms(max(docker))}")
    p99 = percentile(ours, 0.99)
    return [Row(f"5. follow latency: `jobs follow ID`, {lines} lines 50 ms apart",
                f"p50 {ms(statistics.median(ours))}, p99 {ms(p99)}",
                f"`docker run` attach, same script: p50 {ms(statistics.median(docker))}, p99 {ms(percentile(docker, 0.99))}",
                f"{p99 / percentile(docker, 0.99):.0f}× (p99)" if percentile(docker, 0.99) > 0 else "—",
                "p99 ≤ 100 ms", verdict(p99 <= 0.100))]


def fig_logs(bench):
    """6. Log ingest into PostgreSQL against Docker's attach stream; the
    worker's and the API's memory, idle and under that load."""
    worker = bench.need_worker()
    api = bench.servers.api
    idle_worker, idle_api = rss_mib(worker.pid), rss_mib(api.pid)
    with RssSampler(worker.pid, api.pid) as sampler:
        job_id, size = start_log_job(bench.jobs, bench.env, bench.args.megabytes)
    stored, seconds = stored_log(bench.servers, job_id)
    assert stored == size, f"stored {stored} bytes, expected {size}"
    ours = stored / seconds / 1e6
    print(f"log throughput: {stored} bytes stored in {seconds:.2f} s = {ours:.1f} MB/s")
    docker = docker_attach_baseline(bench.args.megabytes)
    worker_peak, api_peak = sampler.peak[worker.pid], sampler.peak[api.pid]
    worker_hwm, api_hwm = peak_rss_mib(worker.pid), peak_rss_mib(api.pid)
    print(f"  worker RSS: idle {idle_worker:.1f} MiB, peak during the job {worker_peak:.1f} MiB, VmHWM since its start {worker_hwm:.1f} MiB")
    print(f"  API RSS:    idle {idle_api:.1f} MiB, peak during the job {api_peak:.1f} MiB, VmHWM since its start {api_hwm:.1f} MiB")
    return [
        Row(f"6. log ingest into PostgreSQL, {bench.args.megabytes} MB on stdout", f"{ours:.1f} MB/s",
            f"`docker run … | wc -c` (Docker's attach stream): {docker:.1f} MB/s", f"{ours/docker:.2f}×",
            "≥ 80 MB/s", verdict(ours >= 80)),
        Row("6. worker RSS", f"idle {idle_worker:.1f} MiB; during the log job {worker_peak:.1f} MiB; VmHWM of the run {worker_hwm:.1f} MiB",
            "—", "—", "≤ 64 MiB (VmHWM of the run)", verdict(worker_hwm <= 64)),
        Row("6. API RSS", f"idle {idle_api:.1f} MiB; during the log job {api_peak:.1f} MiB; VmHWM of the run {api_hwm:.1f} MiB",
            "—", "—", "none set", "—"),
    ]


LOG_LINE = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"  # + "\n": 63 bytes
CHUNK_LINES = 1040  # 65,520 bytes, about the worker's 64 KiB chunks


def fill_jobs(servers, app, first, last, newest):
    """Jobs `scale-FIRST`..`scale-LAST` of app, ended (succeeded) one every
    half second up to `newest` (the last one)."""
    servers.sql(
        "insert into jobs (id, app, command, env, size, timeout_seconds, state, attempt, exit_code,"
        " published_at, created_at, updated_at, started_at, finished_at)"
        f" select md5('scale-' || i), '{app}', jsonb_build_array('sh', '-c', './bin/report --day ' || i),"
        " '{}'::jsonb, 'M', 3600, 'succeeded', 1, 0, t, t, t + interval '2 s', t + interval '300 ms', t + interval '2 s'"
        f" from (select i, now() - interval '1 hour' - ({newest} - i) * interval '500 ms' as t"
        f"       from generate_series({first}, {last}) i) s")


def fill_small_logs(servers, first, last, lines):
    """One chunk of `lines` lines for each job of first..last."""
    servers.sql(
        "insert into job_logs (job_id, seq, stream, time, data, raw_end)"
        f" select md5('scale-' || i), 1, 1, now() - interval '1 hour', d.data, octet_length(d.data)"
        f" from generate_series({first}, {last}) i,"
        f" (select convert_to(repeat('{LOG_LINE}' || chr(10), {lines}), 'UTF8') as data) d")


def fill_big_logs(servers, job_numbers, chunks):
    """`chunks` chunks of 65,520 bytes (text lines) for each of these jobs."""
    servers.sql(
        "insert into job_logs (job_id, seq, stream, time, data, raw_end)"
        f" select md5('scale-' || i), 1 + s, 1, now() - interval '1 hour' + s * interval '1 ms', d.data,"
        f" (s + 1) * octet_length(d.data)"
        f" from unnest(array[{','.join(map(str, job_numbers))}]) i, generate_series(1, {chunks}) s,"
        f" (select convert_to(repeat('{LOG_LINE}' || chr(10), {CHUNK_LINES}), 'UTF8') as data) d")


def median_of(cmd, env, runs=20):
    timed(cmd, env)
    return statistics.median([timed(cmd, env) for _ in range(runs)])


def fig_control_plane(bench):
    """7. `jobs list`, `jobs status ID` and the tail of a big log with
    100,000 jobs and 10 GB of logs in the database (put there with SQL),
    against the same commands before; the database's size per log byte."""
    servers, n, volume = bench.servers, bench.scale_jobs, int(bench.scale_gb * 1e9)
    title = f"7. control plane, {n:,} jobs and {bench.scale_gb:g} GB of logs"
    try:
        data_dir = psql("postgres", "show data_directory")
    except subprocess.CalledProcessError:
        data_dir = "/"
    fs = os.statvfs(data_dir)
    free = fs.f_bavail * fs.f_frsize
    if free < 3 * volume:
        why = (f"only {free/1e9:.1f} GB free on the disk of {data_dir}; {bench.scale_gb:g} GB of logs need"
               f" {3*volume/1e9:.1f} GB (3x: the table, its WAL, room)")
        print(f"control plane: not measured: {why}")
        return [Row(title, f"not measured: {why}")]
    env = dict(bench.env, JOBS_APP="scale")
    servers.create_app("scale")
    tail_flag = "--tail" in subprocess.run([bench.jobs, "logs", "--help"], capture_output=True, text=True).stdout
    tail_cmd = "logs" if tail_flag else "follow"

    def commands(status_id, tail_id):
        return {
            "list": [bench.jobs, "list"],
            "status": [bench.jobs, "status", status_id],
            "tail": [bench.jobs, tail_cmd, tail_id, "--tail", "100"],
        }

    # Before: one ended job with 100 lines of output.
    fill_jobs(servers, "scale", 0, 0, 0)
    fill_small_logs(servers, 0, 0, 100)
    before_cmds = commands(md5_id(0), md5_id(0))
    before = {name: median_of(cmd, env) for name, cmd in before_cmds.items()}

    # The fill: every job gets 2 lines; one job in 100 (the big ones) gets
    # the volume, in chunks like the worker's.
    big_jobs = list(range(100, n + 1, 100))
    chunks = max(1, round(volume / len(big_jobs) / (len(LOG_LINE) + 1) / CHUNK_LINES))
    print(f"control plane: filling {n:,} jobs, {len(big_jobs):,} of them with {chunks} chunks of 65,520 bytes"
          f" ({len(big_jobs) * chunks * 65520 / 1e9:.2f} GB); {free/1e9:.0f} GB free")
    t0 = time.perf_counter()
    fill_jobs(servers, "scale", 1, n, n)
    fill_small_logs(servers, 1, n, 2)
    per_batch = max(1, int(256e6 // (chunks * 65520)))
    reported = 0
    for at in range(0, len(big_jobs), per_batch):
        fill_big_logs(servers, big_jobs[at:at + per_batch], chunks)
        done = min(len(big_jobs), at + per_batch) * chunks * 65520
        if done - reported >= 1e9 or at + per_batch >= len(big_jobs):
            reported = done
            print(f"  {done/1e9:.1f} GB in {time.perf_counter() - t0:.0f} s")
    servers.sql("analyze jobs")
    servers.sql("analyze job_logs")
    fill_seconds = time.perf_counter() - t0
    after_cmds = commands(md5_id(n // 2), md5_id(big_jobs[-1]))
    tail = subprocess.run(after_cmds["tail"], env=env, check=True, capture_output=True).stdout
    assert tail == (LOG_LINE + "\n").encode() * 100, f"the tail printed {len(tail)} bytes, not 100 lines"
    after = {name: median_of(cmd, env) for name, cmd in after_cmds.items()}
    db_size = int(servers.sql("select pg_database_size(current_database())"))
    log_bytes = int(servers.sql("select sum(octet_length(data)) from job_logs"))
    big_bytes = chunks * 65520
    print(f"  filled in {fill_seconds:.0f} s; database {db_size/1e9:.2f} GB for {log_bytes/1e9:.2f} GB of log data"
          f" = {db_size/log_bytes:.3f} bytes per stored byte")
    labels = {
        "list": ("`jobs list` (newest 50)", "< 50 ms"),
        "status": ("`jobs status ID` (a job half-way back)", "< 50 ms"),
        "tail": (f"`jobs {tail_cmd} ID --tail 100` (a job with {big_bytes/1e6:.1f} MB of output)", None),
    }
    rows = []
    for name, (label, target) in labels.items():
        print(f"  {label:<60} median of 20: {ms(after[name])} (before the fill: {ms(before[name])})")
        rows.append(Row(f"{title}: {label}", f"median {ms(after[name])}",
                        f"same command before the fill{' (100 lines of output)' if name == 'tail' else ''}: {ms(before[name])}",
                        f"{after[name]/before[name]:.2f}×", target or "none set",
                        verdict(after[name] < 0.050) if target else "—"))
    rows.append(Row(f"{title}: database size per stored log byte",
                    f"{db_size/log_bytes:.3f} ({db_size/1e9:.2f} GB for {log_bytes/1e9:.2f} GB of `job_logs.data`,"
                    " the fill's and the earlier figures')",
                    "—", "—", "none set", "—"))
    return rows


def md5_id(i):
    import hashlib
    return hashlib.md5(f"scale-{i}".encode()).hexdigest()


# In the order of issue 13; submit-rate runs first (see all_main).
FIGURES = {
    "overhead": fig_overhead,
    "throughput": fig_throughput,
    "submit-rate": fig_submit_rate,
    "first-line": fig_first_line,
    "follow": fig_follow,
    "logs": fig_logs,
    "control-plane": fig_control_plane,
}


def describe_machine():
    def first(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    with open("/proc/meminfo") as f:
        mem = int(next(l for l in f if l.startswith("MemTotal")).split()[1]) / 1024 / 1024
    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    pretty = "?"
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as f:
            pretty = next((l.split("=", 1)[1].strip().strip('"') for l in f if l.startswith("PRETTY_NAME=")), "?")
    docker = first(["docker", "version", "--format", "{{.Server.Version}}"])
    postgres = psql("postgres", "show server_version").split()[0]
    rabbit = first(["rabbitmqctl", "-q", "version"]) if shutil.which("rabbitmqctl") else "?"
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {pretty}, kernel {os.uname().release},"
            f" Docker {docker}, PostgreSQL {postgres}, RabbitMQ {rabbit}")


def build_of_binaries():
    built = datetime.datetime.fromtimestamp(
        max(os.path.getmtime(os.path.join(BIN, b)) for b in ("jobs", "jobs-api", "jobs-worker")),
        datetime.timezone.utc)
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "crates"], capture_output=True, text=True).stdout.strip()
    return f"release binaries built {built:%Y-%m-%d %H:%M} UTC, HEAD {head}{' with uncommitted changes under crates/' if dirty else ''}"


def all_main(args):
    names = list(FIGURES) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        sys.exit(f"unknown figure(s) {', '.join(unknown)}: choose among {', '.join(FIGURES)}")
    # The submit rate is measured with no worker (its jobs just queue), so
    # it goes first, before the one worker starts.
    order = sorted(names, key=lambda n: n != "submit-rate")
    command = "python3 bench/run.py " + " ".join(sys.argv[1:])
    began = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    machine = describe_machine()
    build = build_of_binaries()
    print(f"{command}\n  {began:%Y-%m-%d %H:%M} UTC; {machine}\n  {build}; load average {load_before[0]:.1f}\n")
    rows, failed = {}, []
    bench = Bench(args)
    try:
        for name in order:
            try:
                rows[name] = FIGURES[name](bench)
            except (Exception, SystemExit) as error:
                traceback.print_exc()
                failed.append(name)
                rows[name] = [Row(f"{name}", f"not measured: {error}")]
            print()
    finally:
        bench.close()
    load_after = os.getloadavg()
    table = render_table([row for name in FIGURES if name in rows for row in rows[name]])
    print(table)
    if args.all and not args.only and not args.no_docs:
        block = docs_block(args, command, began, machine, build, bench, load_before, load_after, table)
        rewrite_docs(block)
        print(f"\nrewrote the block of {os.path.relpath(DOCS, ROOT)} between {DOCS_START} and {DOCS_END}")
    if failed:
        sys.exit(f"figures not measured: {', '.join(failed)}")


def render_table(rows):
    def cell(text):
        return str(text).replace("|", "\\|").replace("\n", " ")
    lines = ["| figure | ours | baseline, same run | ratio | target | met? |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append("| " + " | ".join(cell(c) for c in (row.figure, row.ours, row.baseline, row.ratio, row.target, row.verdict)) + " |")
    return "\n".join(lines)


def docs_block(args, command, began, machine, build, bench, load_before, load_after, table):
    kind = ("**a `--quick` run**: fewer runs and smaller volumes than the figures of record"
            if args.quick else "a full run")
    return (
        f"Last written by `{command}` ({kind}) on {began:%Y-%m-%d %H:%M} UTC, on {machine};"
        f" {build}. Load average {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end"
        f" ({os.cpu_count()} cores{', shared with other work' if max(load_before[0], load_after[0]) > 1.5 else ''}).\n\n"
        f"Runs: {bench.runs} of each command (interleaved with its baseline); throughput {bench.throughput_jobs} jobs;"
        f" submit rate {args.rate}/s for {bench.submit_seconds} s; follow {bench.follow_lines} lines;"
        f" log ingest {args.megabytes} MB; control plane {bench.scale_jobs:,} jobs and {bench.scale_gb:g} GB of logs."
        f" The API ran with `JOBS_MAX_QUEUED_JOBS_PER_APP={bench.max_active}` and the per-token rate limit raised"
        f" (`JOBS_RATE_LIMIT_PER_SECOND` and `_BURST` 1000000), the worker with 4 slots.\n\n"
        f"{table}\n"
    )


def rewrite_docs(block):
    with open(DOCS) as f:
        text = f.read()
    if DOCS_START in text and DOCS_END in text:
        before, rest = text.split(DOCS_START, 1)
        _, after = rest.split(DOCS_END, 1)
        text = f"{before}{DOCS_START}\n{block}{DOCS_END}{after}"
    else:
        at = text.index("\n## ") + 1
        text = (text[:at] + "## Summary (bench/run.py --all)\n\n"
                "The block below is rewritten by `python3 bench/run.py --all` each time it runs.\n\n"
                f"{DOCS_START}\n{block}{DOCS_END}\n\n" + text[at:])
    with open(DOCS, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
