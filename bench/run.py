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
the same image, interleaved, median and p90; and from spawn to the first
line of `jobs run -- echo hi`, with and without the pool. Before each
measured command the pool is refilled, so every warm run finds one waiting.

Usage: python3 bench/run.py [--dev] [--interactive] [--warm N] [--runs 20] [--megabytes 200] [--starts 10]
       python3 bench/run.py --uploads [--store s3|file] [--runs 20] [--megabytes 1024]
Needs: deploy/setup.sh done, `cargo build --release --bins`.
"""

import argparse
import fcntl
import os
import json
import select
import struct
import termios
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
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


def measure_overhead(jobs, env, runs):
    # Warm both paths once so that neither pays a cold cache.
    timed([jobs, "run", "--", "true"], env)
    timed(["docker", "run", "--rm", IMAGE, "true"], env)

    ours, docker = [], []
    for _ in range(runs):
        ours.append(timed([jobs, "run", "--", "true"], env))
        docker.append(timed(["docker", "run", "--rm", IMAGE, "true"], env))
    m_ours, m_docker = statistics.median(ours), statistics.median(docker)
    print(f"overhead: runs={runs} each, interleaved")
    print(f"  jobs run -- true           median {m_ours*1000:.0f} ms  (min {min(ours)*1000:.0f}, max {max(ours)*1000:.0f})")
    print(f"  docker run --rm IMAGE true median {m_docker*1000:.0f} ms  (min {min(docker)*1000:.0f}, max {max(docker)*1000:.0f})")
    print(f"  ratio of medians: {m_ours/m_docker:.2f}x")


def p90(samples):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


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
    back to full, so each warm run finds a container waiting."""
    subprocess.run([jobs, "apps", "create", "warm", "--image", IMAGE, "--warm", str(pool)], env=env, check=True, capture_output=True)
    wait_for_pool(worker_id, pool)
    target = subprocess.run(["docker", "run", "-d", "--rm", IMAGE, "sleep", "3600"], check=True, capture_output=True, text=True).stdout.strip()
    commands = {
        "jobs run -- true (warm pool)": [jobs, "run", "-a", "warm", "--", "true"],
        "jobs run -- true (no pool)": [jobs, "run", "-a", "bench", "--", "true"],
        "docker run --rm IMAGE true": ["docker", "run", "--rm", IMAGE, "true"],
        "docker exec CONTAINER true": ["docker", "exec", target, "true"],
    }
    first_lines = {
        "jobs run -- echo hi (warm pool)": [jobs, "run", "-a", "warm", "--", "echo", "hi"],
        "jobs run -- echo hi (no pool)": [jobs, "run", "-a", "bench", "--", "echo", "hi"],
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
        print(f"  {label:<34} median {median*1000:4.0f} ms  p90 {p90(samples)*1000:4.0f} ms"
              f"  {median/docker_run:.2f}x docker run, {median/docker_exec:.2f}x docker exec")


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


def start_log_job(jobs, env, megabytes):
    size = megabytes * 1000 * 1000
    cmd = log_command(size)
    job_id = subprocess.run([jobs, "run", "-d", "--", cmd], env=env, check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([jobs, "wait", job_id], env=env, check=True)
    return job_id, size


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        hwm = next(l for l in status if l.startswith("VmHWM")).split()[1]
    return int(hwm) / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--dev", action="store_true", help="measure `jobs dev` instead of jobs-api + jobs-worker")
    parser.add_argument("--starts", type=int, default=10, help="with --dev: how many restarts to time")
    parser.add_argument("--interactive", action="store_true", help="measure interactive runs (direct attach) instead")
    parser.add_argument("--uploads", action="store_true", help="measure uploads and artifacts")
    parser.add_argument("--warm", type=int, default=0, metavar="N",
                        help="measure runs through a warm pool of N against no pool, docker run and docker exec")
    parser.add_argument("--store", choices=["s3", "file"], default="s3", help="with --uploads: the object store")
    args = parser.parse_args()
    if args.uploads:
        uploads_main(args)
    elif args.dev:
        dev_main(args)
    else:
        servers_main(args)


def servers_main(args):
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
        if args.interactive:
            measure_interactive(jobs, env, args.runs)
            return
        if args.warm:
            measure_warm(jobs, env, args.runs, env["JOBS_WORKER_ID"], args.warm)
            return
        measure_overhead(jobs, env, args.runs)

        job_id, size = start_log_job(jobs, env, args.megabytes)
        stored = int(psql(db, f"select sum(octet_length(data)) from job_logs where job_id = '{job_id}'"))
        seconds = float(psql(db, f"select extract(epoch from finished_at - started_at) from jobs where id = '{job_id}'"))
        print(f"log throughput: {stored} bytes stored in {seconds:.2f} s = {stored/seconds/1e6:.1f} MB/s")
        print(f"  worker peak RSS (VmHWM): {peak_rss_mib(worker.pid):.1f} MiB")
        docker_attach_baseline(args.megabytes)
        assert stored == size, f"stored {stored} bytes, expected {size}"
    finally:
        worker.terminate()
        api.terminate()
        worker.wait()
        api.wait()
        psql("postgres", f"drop database {db} with (force)")


def seconds_of(cmd, env):
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdin=subprocess.DEVNULL, capture_output=True)
    return time.perf_counter() - t0


def uploads_main(args):
    db = "jobs_bench_" + uuid.uuid4().hex[:12]
    psql("postgres", f"create database {db}")
    work = tempfile.mkdtemp(prefix="jobs-bench-uploads-", dir=os.path.join(ROOT, "target"))
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
    bucket = None
    if args.store == "s3":
        bucket = "jobs-bench-" + db.replace("_", "-")
        subprocess.run(["curl", "-fsS", "-X", "PUT", f"http://127.0.0.1:9000/{bucket}"], check=True, capture_output=True)
        env.update({
            "JOBS_OBJECT_STORE": f"s3://{bucket}/bench",
            "AWS_ENDPOINT": "http://127.0.0.1:9000", "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
        })
    else:
        env["JOBS_OBJECT_STORE"] = "file://" + os.path.join(work, "objects")
    api, line = start([os.path.join(BIN, "jobs-api")], env, "listening on")
    env["JOBS_API_URL"] = "http://" + line.split()[-1]
    worker, _ = start([os.path.join(BIN, "jobs-worker")], env, "ready")
    env["JOBS_TOKEN"] = token
    env["JOBS_APP"] = "bench"
    jobs = os.path.join(BIN, "jobs")
    size = args.megabytes * 1000 * 1000
    big = os.path.join(work, "big.bin")
    small = os.path.join(work, "small.txt")
    try:
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
    finally:
        worker.terminate()
        api.terminate()
        worker.wait()
        api.wait()
        psql("postgres", f"drop database {db} with (force)")
        shutil.rmtree(work, ignore_errors=True)


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


if __name__ == "__main__":
    main()
