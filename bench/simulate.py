#!/usr/bin/env python3
"""The control plane at scale, by simulation: one jobs-api, RabbitMQ and
PostgreSQL, and many jobs-worker processes whose Docker is
`jobs-stub-engine` (crates/stub-engine): a Docker API that runs no
container, only reads each command line (`true` ends 0 at once). Every
worker runs its whole path for each job (consume, fenced claim, create,
attach, record the start, start, running, output, wait, end, removal);
only the container is simulated. So one machine can host 100 workers.

Submits JOBS `true` jobs over the API, spread over APPS apps, from CLIENTS
threads (keep-alive HTTP, as fast as the API takes them), then waits for
every one to end, and prints:
- the submit rate and the API's latency (p50, p99);
- the dispatch rate: jobs ended per second, from the first job's creation
  to the last one's end, by the database clock;
- claim latency (creation to the recorded start: queue, consume, claim,
  create) and end-to-end latency (creation to end), p50 and p99;
- the database load: commits and rows written per second (pg_stat_database);
- that every job ended `succeeded` after exactly one attempt.

With --fairness, the first app holds a backlog of JOBS jobs (submitted
while the workers are drained, then let go) while the other apps each
submit a job now and then (--trickle-rate jobs/s in all); it prints the
latency from creation to start of those other apps' jobs, p50 and p99,
first with no backlog at all (the baseline, same run), then behind it.

With --backlog, every worker is drained (`jobs workers drain`) before the
submission and undrained at once after it, so that the dispatch rate is
measured on its own, from a full queue: from the first job's start to the
last one's end, with no submission competing for the machine.

Usage: python3 bench/simulate.py [--workers 100] [--slots 4] [--jobs 5000] [--clients 8] [--apps 20] [--backlog | --fairness]
Needs: deploy/setup.sh done, `cargo build --release --bins`.
"""

import argparse
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
PG = "postgres://jobs:jobs@127.0.0.1:5432"


def psql(db, sql):
    out = subprocess.run(["psql", "-X", "-Atq", f"{PG}/{db}", "-c", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def start(cmd, env, marker, log):
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)
    line = proc.stdout.readline()
    if marker not in line:
        sys.exit(f"{cmd[0]} did not start: {line!r} (see {log})")
    return proc, line.strip()


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def submit_all(api, token, apps, count, clients):
    """POSTs `count` jobs, spread over `apps` in turn, from `clients`
    threads; returns (seconds, latencies, failures)."""
    host, port = api.split(":")
    body = json.dumps({"command": ["true"]})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies, failures, lock = [], [], threading.Lock()
    counter = iter(range(count))

    def client():
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        mine = []
        for index in iter(lambda: next(counter, None), None):
            app = apps[index % len(apps)]
            t0 = time.perf_counter()
            try:
                connection.request("POST", f"/v1/apps/{app}/jobs", body, headers)
                response = connection.getresponse()
                response.read()
                ok = response.status in (200, 201)
            except OSError as error:
                ok = False
                response = error
                connection = http.client.HTTPConnection(host, int(port), timeout=60)
            mine.append(time.perf_counter() - t0)
            if not ok:
                with lock:
                    failures.append(getattr(response, "status", str(response)))
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - t0, latencies, failures


def trickle(api, token, apps, rate, keep_going):
    """Submits one job at a time to `apps` in turn, `rate` jobs a second,
    while keep_going() says so; returns how many failed."""
    host, port = api.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    body = json.dumps({"command": ["true"]})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    failed, index, next_at = 0, 0, time.perf_counter()
    while keep_going():
        connection.request("POST", f"/v1/apps/{apps[index % len(apps)]}/jobs", body, headers)
        response = connection.getresponse()
        response.read()
        failed += response.status not in (200, 201)
        index += 1
        next_at += 1 / rate
        time.sleep(max(0.0, next_at - time.perf_counter()))
    return failed


def start_latency(db, apps, since=None):
    """p50 and p99, in ms, from creation to start of the jobs of `apps`
    (created after `since`, a database time, when given); and their count."""
    names = ", ".join(f"'{app}'" for app in apps)
    after = f" and created_at > '{since}'" if since else ""
    row = psql(db, f"""
        select percentile_cont(0.5) within group (order by extract(epoch from start_requested_at - created_at)),
               percentile_cont(0.99) within group (order by extract(epoch from start_requested_at - created_at)),
               count(*)
        from jobs where app in ({names}){after}""").split("|")
    return float(row[0]) * 1000, float(row[1]) * 1000, int(row[2])


def fairness(db, address, token, apps, workers, args):
    """The backlog of one app against the trickle of the others."""
    others = apps[1:]
    # Baseline: the trickle alone, nothing queued.
    until = time.perf_counter() + args.trickle_seconds
    trickle(address, token, others, args.trickle_rate, lambda: time.perf_counter() < until)
    time.sleep(1)
    p50, p99, count = start_latency(db, others)
    print(f"fairness baseline, no backlog: {count} jobs of {len(others)} apps, creation to start p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    # The backlog, queued while the workers are drained, then let go.
    set_draining(address, token, workers, True)
    seconds, _, failures = submit_all(address, token, apps[:1], args.jobs, args.clients)
    print(f"backlog: {args.jobs} jobs of {apps[0]} queued in {seconds:.1f} s; {len(failures)} failed")
    since = psql(db, "select now()")
    set_draining(address, token, workers, False)
    queued = lambda: int(psql(db, f"select count(*) from jobs where app = '{apps[0]}' and state = 'queued'"))
    checked = {"at": 0.0, "left": args.jobs}

    def backlog_left():
        if time.perf_counter() - checked["at"] > 1:
            checked.update(at=time.perf_counter(), left=queued())
        return checked["left"] > args.jobs // 10
    t0 = time.perf_counter()
    trickle(address, token, others, args.trickle_rate, backlog_left)
    print(f"  the backlog went from {args.jobs} to {checked['left']} queued in {time.perf_counter() - t0:.1f} s")
    time.sleep(1)
    p50, p99, count = start_latency(db, others, since)
    print(f"fairness behind {args.jobs} queued jobs of one app: {count} jobs of {len(others)} apps, "
          f"creation to start p50 {p50:.0f} ms, p99 {p99:.0f} ms (target p99 <= 1000 ms)")


def set_draining(api, token, workers, draining):
    """Drains every worker, or undoes it, as fast as one connection allows."""
    host, port = api.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    for worker in workers:
        connection.request("POST" if draining else "DELETE", f"/v1/workers/{worker}/drain",
                           headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            sys.exit(f"{'draining' if draining else 'undraining'} {worker}: HTTP {response.status}")


def cpu_seconds():
    """CPU seconds used so far by each process: {pid: (program, seconds)}.
    Per process, since a kernel worker's name changes with its work item."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)
            name = fields[0].split("(", 1)[1]
            values = fields[1].split()
        except (OSError, IndexError):
            continue
        if name.startswith("kworker"):
            name = "kworker"
        name = {"beam.smp": "rabbitmq", "postgres": "postgresql"}.get(name, name)
        used[pid] = (name, (int(values[11]) + int(values[12])) / ticks)
    return used


def cpu_used(before, after):
    """CPU seconds by program between two cpu_seconds() readings."""
    totals = {}
    for pid, (name, seconds) in after.items():
        earlier = before.get(pid, (name, 0.0))[1]
        totals[name] = totals.get(name, 0.0) + seconds - earlier
    return totals


def db_counters(db):
    row = psql(db, "select xact_commit, tup_inserted + tup_updated + tup_deleted from pg_stat_database where datname = current_database()")
    commits, rows = row.split("|")
    return int(commits), int(rows)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--apps", type=int, default=20,
                        help="apps the jobs are spread over: each app's job creations take its row lock in turn (its quota)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--bin", default=BIN, help="the directory of the binaries (a baseline's build)")
    parser.add_argument("--backlog", action="store_true",
                        help="drain every worker while submitting, then undrain them all: dispatch from a full queue")
    parser.add_argument("--fairness", action="store_true",
                        help="one app's backlog of JOBS jobs against a trickle of jobs of the other apps")
    parser.add_argument("--trickle-rate", type=float, default=10, help="jobs/s of the other apps, in all")
    parser.add_argument("--trickle-seconds", type=float, default=10, help="how long the baseline trickle lasts")
    args = parser.parse_args()
    bin_dir = args.bin

    # Each worker holds up to 16 connections (its pool, LISTEN included).
    needed = args.workers * 6 + 50
    allowed = int(psql("postgres", "show max_connections"))
    if allowed < needed:
        sys.exit(f"PostgreSQL allows {allowed} connections; {args.workers} workers need about {needed}: "
                 f"psql -c 'alter system set max_connections = {max(needed, 1000)}' and restart it "
                 f"(pg_ctlcluster 15 main restart)")
    db = "jobs_sim_" + uuid.uuid4().hex[:12]
    psql("postgres", f"create database {db}")
    token = secrets.token_hex(32)
    socket = f"/tmp/jobs-stub-engine-{db}.sock"
    logs = f"/tmp/jobs-sim-{db}"
    os.makedirs(logs)
    env = dict(os.environ)
    env.update({
        # The database is on this host: no TLS to it (bench/run.py does the same).
        "JOBS_DATABASE_URL": f"{PG}/{db}?sslmode=disable",
        "JOBS_AMQP_QUEUE": "jobs.sim." + db,
        "JOBS_ADMIN_TOKEN": token,
        "JOBS_LISTEN": "127.0.0.1:0",
        "JOBS_MAX_QUEUED_JOBS_PER_APP": str(args.jobs + 1),
        "JOBS_RATE_LIMIT_PER_SECOND": "100000",
        "JOBS_RATE_LIMIT_BURST": "100000",
        "JOBS_WORKER_SLOTS": str(args.slots),
        "DOCKER_HOST": f"unix://{socket}",
        # The stub engine makes no bridge: no host firewall to install,
        # a hundred times over, on the shared chain.
        "JOBS_HOST_FIREWALL": "false",
        "RUST_LOG": "warn",
    })
    processes = []
    try:
        engine, _ = start([os.path.join(bin_dir, "jobs-stub-engine"), "--socket", socket], env, "listening on", f"{logs}/engine.log")
        processes.append(engine)
        api, line = start([os.path.join(bin_dir, "jobs-api")], env, "listening on", f"{logs}/api.log")
        processes.append(api)
        address = line.split()[-1]
        env["JOBS_API_URL"] = f"http://{address}"
        t0 = time.perf_counter()
        for n in range(args.workers):
            worker_env = dict(env, JOBS_WORKER_ID=f"sim-{n:03d}")
            worker, _ = start([os.path.join(bin_dir, "jobs-worker")], worker_env, "ready", f"{logs}/worker-{n:03d}.log")
            processes.append(worker)
        print(f"{args.workers} workers of {args.slots} slots ready in {time.perf_counter() - t0:.1f} s (stub engine, release build)")
        apps = [f"sim{n}" for n in range(args.apps)]
        for app in apps:
            subprocess.run([os.path.join(bin_dir, "jobs"), "apps", "create", app, "--image", "stub/any:latest"],
                           env=dict(env, JOBS_TOKEN=token), check=True, capture_output=True)

        workers = [f"sim-{n:03d}" for n in range(args.workers)]
        if args.fairness:
            fairness(db, address, token, apps, workers, args)
            return
        if args.backlog:
            set_draining(address, token, workers, True)
            seconds, latencies, failures = submit_all(address, token, apps, args.jobs, args.clients)
        cpu0 = cpu_seconds()
        commits0, rows0 = db_counters(db)
        if args.backlog:
            set_draining(address, token, workers, False)
        else:
            seconds, latencies, failures = submit_all(address, token, apps, args.jobs, args.clients)
        print(f"submit: {args.jobs} jobs to {len(apps)} apps from {args.clients} clients in {seconds:.2f} s = {args.jobs / seconds:.0f} jobs/s; "
              f"latency p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms; "
              f"{len(failures)} failed {failures[:5]}")
        deadline = time.perf_counter() + args.timeout
        while True:
            ended = int(psql(db, "select count(*) from jobs where finished_at is not null"))
            if ended >= args.jobs - len(failures):
                break
            if time.perf_counter() > deadline:
                sys.exit(f"only {ended} of {args.jobs} jobs ended within {args.timeout} s")
            # The window comes from the database's times, so a slow poll only
            # spares the machine (each psql is a process and a backend).
            time.sleep(1)
        commits1, rows1 = db_counters(db)
        cpu1 = cpu_seconds()
        # From a backlog the window opens at the first start (the undrain);
        # otherwise at the first creation.
        opened = "min(start_requested_at)" if args.backlog else "min(created_at)"
        window = float(psql(db, f"select extract(epoch from max(finished_at) - {opened}) from jobs"))
        stats = psql(db, """
            select percentile_cont(0.5) within group (order by extract(epoch from start_requested_at - created_at)),
                   percentile_cont(0.99) within group (order by extract(epoch from start_requested_at - created_at)),
                   percentile_cont(0.5) within group (order by extract(epoch from finished_at - created_at)),
                   percentile_cont(0.99) within group (order by extract(epoch from finished_at - created_at))
            from jobs""").split("|")
        claim50, claim99, end50, end99 = (float(value) * 1000 for value in stats)
        outcomes = psql(db, "select state || ' attempt ' || attempt || ': ' || count(*) from jobs group by state, attempt order by 1")
        workers_used = int(psql(db, "select count(distinct lease_owner) from jobs"))
        total = args.jobs - len(failures)
        print(f"dispatch: {total} jobs ended in {window:.2f} s ({'first start' if args.backlog else 'first creation'} to last end) = {total / window:.0f} jobs/s, "
              f"on {workers_used} workers")
        print(f"  claim latency (created -> start recorded): p50 {claim50:.0f} ms, p99 {claim99:.0f} ms")
        print(f"  end to end (created -> ended): p50 {end50:.0f} ms, p99 {end99:.0f} ms")
        print(f"  database: {(commits1 - commits0) / window:.0f} commits/s, {(rows1 - rows0) / window:.0f} rows written/s, "
              f"{(commits1 - commits0) / total:.1f} commits and {(rows1 - rows0) / total:.1f} rows per job")
        print(f"  outcomes: {outcomes.replace(chr(10), '; ')}")
        used = cpu_used(cpu0, cpu1)
        busiest = sorted(used.items(), key=lambda item: -item[1])[:6]
        print("  CPU seconds in the window: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in busiest)
              + f" (of {2 * window:.0f} on 2 cores)" if os.cpu_count() == 2 else "")
        control_plane = sum(used.get(name, 0.0) for name in ("jobs-worker", "jobs-api", "postgresql", "rabbitmq"))
        print(f"  control plane CPU per job (workers, API, PostgreSQL, RabbitMQ): {control_plane / total * 1000:.2f} ms")
    finally:
        for proc in reversed(processes):
            proc.terminate()
        for proc in processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        psql("postgres", f"drop database {db} with (force)")
        # Its queue would outlive it in RabbitMQ, with the wake-ups no claim
        # needed: dozens of them slow the broker down for later runs.
        subprocess.run(["rabbitmqctl", "delete_queue", env["JOBS_AMQP_QUEUE"]], capture_output=True)


if __name__ == "__main__":
    main()
