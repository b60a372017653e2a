//! Workers on separate hosts (issue 10): three workers, each in a network
//! namespace of its own ([`jobs_e2e::netns`]) with its own worker id, reach
//! the API, PostgreSQL, RabbitMQ and the object store (a private moto) only
//! over the bridge's address; nothing of the host listens on their
//! loopback, and they share no disk with the API or the client (S3, not
//! `file://`). Only the Docker socket is shared: the engine is the worker
//! host's own, as on a real host.
//!
//! - 60 jobs with uploads (`-f`) and artifacts (`--artifact`), submitted by
//!   the CLI on the host, each end with their own exit code and exact
//!   output, every artifact downloads byte for byte, and each of the three
//!   workers runs some of them;
//! - an interactive run goes through a worker in a namespace (it dials back
//!   to the API's advertised bridge address): exact bytes back, exit 5;
//! - kill -9 of a worker that holds claimed jobs whose containers it has
//!   not made yet (a Docker proxy holds its creates) and one running job:
//!   the claimed ones are queued again and run by the other workers, the
//!   running one ends `lost`, `worker lost`, within a lease plus a reaper
//!   interval; a restart of the dead worker removes its orphaned container;
//! - no job ever runs twice (container starts, from Docker's event log).
//!
//! Synchronisation: CLI calls run to their end (`jobs wait`), states and
//! held creates are polled with deadlines.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use jobs_e2e::docker::{EventWatcher, containers_with_label, describe_containers_with_label};
use jobs_e2e::docker_proxy::{DockerProxy, StartHold};
use jobs_e2e::executions::{starts_per_job, wait_for_logs};
use jobs_e2e::netns::Network;
use jobs_e2e::{
    HostWorker, ObjectStoreKind, TestEnv, TestEnvOptions, assert_bytes_eq, cli, wait_until,
};

const WORKERS: usize = 3;
const SLOTS: u32 = 3;
const JOBS: usize = 60;
/// Short, so that the reaper acts within seconds of the kill.
const LEASE_SECONDS: u64 = 5;
const REAPER_SECONDS: u64 = 1;
/// How long the whole batch, or one step, may take on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(300);
/// Threads of the CLI on the host.
const CLIENTS: usize = 4;

/// One job: how it is run, and what a user must get back.
struct Spec {
    index: usize,
    /// The local file it uploads, and its bytes.
    upload: Option<(PathBuf, Vec<u8>)>,
    /// The artifact's path in the container, and the bytes it must hold.
    artifact: Option<(String, Vec<u8>)>,
    command: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit_code: i32,
}

impl Spec {
    /// Job `index` of a fixed mix: an upload, an artifact, or both; exit
    /// codes 0 to 4; sizes that grow with the index.
    fn new(index: usize, local: &Path) -> Spec {
        let exit_code = (index % 5) as i32;
        let mut spec = Spec {
            index,
            upload: None,
            artifact: None,
            command: String::new(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            exit_code,
        };
        match index % 3 {
            0 => {
                // Binary bytes in; their SHA-256 out.
                let bytes: Vec<u8> = (0..2_000 + index * 997)
                    .map(|i| ((i * 31 + index) % 256) as u8)
                    .collect();
                let name = format!("in-{index}.bin");
                spec.command =
                    format!("sha256sum < /tmp/uploads/{name} | cut -c1-64; exit {exit_code}");
                spec.stdout = format!("{}\n", sha256_hex(&bytes)).into_bytes();
                spec.upload = Some((local.join(name), bytes));
            }
            1 => {
                let count = 100 + index * 53;
                let path = format!("/tmp/art-{index}.txt");
                spec.command =
                    format!("seq 1 {count} > {path}; echo job {index}; exit {exit_code}");
                let numbers: String = (1..=count).map(|n| format!("{n}\n")).collect();
                spec.artifact = Some((path, numbers.into_bytes()));
                spec.stdout = format!("job {index}\n").into_bytes();
            }
            _ => {
                // Text in, the same text upper-cased as the artifact.
                let text: String = (0..20 + index)
                    .map(|line| format!("line {line} of job {index}\n"))
                    .collect();
                let name = format!("in-{index}.txt");
                let path = format!("/tmp/art-{index}.txt");
                spec.command = format!(
                    "tr a-z A-Z < /tmp/uploads/{name} > {path}; echo done {index}; \
                     echo to stderr >&2; exit {exit_code}"
                );
                spec.artifact = Some((path, text.to_uppercase().into_bytes()));
                spec.stdout = format!("done {index}\n").into_bytes();
                spec.stderr = b"to stderr\n".to_vec();
                spec.upload = Some((local.join(name), text.into_bytes()));
            }
        }
        if let Some((path, bytes)) = &spec.upload {
            std::fs::write(path, bytes).expect("write the local upload");
        }
        spec
    }

    /// `jobs run -d …` of this job; returns its id.
    fn submit(&self, env: &TestEnv) -> String {
        let mut args: Vec<String> = Vec::new();
        if let Some((path, _)) = &self.upload {
            args.extend(["-f".to_owned(), path.display().to_string()]);
        }
        if let Some((path, _)) = &self.artifact {
            args.extend(["--artifact".to_owned(), path.clone()]);
        }
        args.extend(["--", "sh", "-c", &self.command].map(str::to_owned));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        env.run_detached(&args)
    }

    /// Waits for the job's end and checks what a user gets: its exit code
    /// from `jobs wait`, its exact output from `jobs logs`, its artifact's
    /// bytes from `jobs artifacts`. Returns `jobs status --json`.
    fn check(&self, env: &TestEnv, id: &str, downloads: &Path) -> serde_json::Value {
        let index = self.index;
        env.jobs_with_timeout(&["wait", id], DEADLINE)
            .assert_code(self.exit_code);
        let logs = env.jobs(&["logs", id]);
        logs.assert_success();
        assert_bytes_eq(&logs.stdout, &self.stdout, &format!("job {index}'s stdout"));
        assert_bytes_eq(&logs.stderr, &self.stderr, &format!("job {index}'s stderr"));
        if let Some((path, bytes)) = &self.artifact {
            let out = downloads.join(index.to_string());
            let out = out.display().to_string();
            env.jobs(&["artifacts", id, "-o", &out]).assert_success();
            let name = Path::new(path).file_name().expect("a file name");
            let listed: Vec<_> = std::fs::read_dir(&out)
                .unwrap_or_else(|error| panic!("job {index}'s artifacts in {out}: {error}"))
                .map(|entry| entry.expect("a directory entry").file_name())
                .collect();
            assert_eq!(listed, [name], "job {index}'s artifacts in {out}");
            let got = std::fs::read(Path::new(&out).join(name))
                .unwrap_or_else(|error| panic!("job {index}'s artifact in {out}: {error}"));
            assert_bytes_eq(&got, bytes, &format!("job {index}'s artifact"));
        }
        env.status(id)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The `host:port` of a service URL (`scheme://[user@]host:port[/…]`).
fn address_of(url: &str) -> SocketAddrV4 {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .parse()
        .unwrap_or_else(|error| panic!("{url} names no IPv4 host:port: {error}"))
}

fn worker_of(status: &serde_json::Value) -> String {
    status["worker_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no worker_id in {status}"))
        .to_owned()
}

/// Runs `work(index)` for every index on [`CLIENTS`] threads of the host.
fn on_clients<T: Send>(count: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let work = &work;
                scope.spawn(move || {
                    (client..count)
                        .step_by(CLIENTS)
                        .map(|index| (index, work(index)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("a client thread"))
            .collect()
    });
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

#[test]
fn workers_on_separate_hosts_share_the_jobs_and_take_over_a_dead_one_s_queued_work() {
    let started = Instant::now();
    let network = Network::create(WORKERS);
    let bridge = network.bridge_ip;
    let mut env = TestEnv::start_with(
        TestEnvOptions::new(SLOTS)
            .on_address(bridge)
            .objects(ObjectStoreKind::S3)
            .no_worker()
            .worker_env("JOBS_LEASE", &format!("{LEASE_SECONDS}s"))
            .api_env("JOBS_REAPER_INTERVAL", &format!("{REAPER_SECONDS}s"))
            // 60 jobs are queued at once; the default quota is 10 per app.
            .api_env("JOBS_MAX_QUEUED_JOBS_PER_APP", "100"),
    );

    // The last worker's Docker socket goes through a proxy that will hold
    // its container creates: jobs it claims then stay claimed, not started.
    // In /tmp: the log directory's path is longer than a socket's may be.
    let socket = std::env::temp_dir().join(format!(
        "jobs-e2e-docker-{}.sock",
        uuid::Uuid::now_v7().simple()
    ));
    let proxy = DockerProxy::start_disarmed(&socket, StartHold::CreateBefore);
    let ids: Vec<String> = (1..=WORKERS)
        .map(|n| format!("{}-host{n}", env.worker_id))
        .collect();
    let mut workers: Vec<HostWorker> = network
        .hosts
        .iter()
        .zip(&ids)
        .enumerate()
        .map(|(n, (host, id))| {
            let docker_host = proxy.docker_host();
            let extra: Vec<(&str, &str)> = if n == WORKERS - 1 {
                vec![("DOCKER_HOST", docker_host.as_str())]
            } else {
                Vec::new()
            };
            env.start_worker_on(host, id, &extra)
        })
        .collect();

    // Every service is on the bridge's address, and a namespace reaches
    // each there, never on its own loopback.
    let services = [
        ("the API", env.api_url().to_owned()),
        ("PostgreSQL", env.database_url.clone()),
        ("RabbitMQ", env.amqp_url.clone()),
        ("the object store", env.objects.endpoint.clone()),
    ];
    for (name, url) in &services {
        let address = address_of(url);
        assert_eq!(*address.ip(), bridge, "{name} is at {url}");
        for host in &network.hosts {
            let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, address.port()));
            let refused = host.connect(loopback).map(|_| ());
            assert_eq!(
                refused.as_ref().map_err(std::io::Error::kind),
                Err(ErrorKind::ConnectionRefused),
                "from {}, {loopback} must refuse ({name} listens on the host's {address}): {refused:?}",
                host.netns
            );
            host.connect(SocketAddr::V4(address))
                .unwrap_or_else(|error| {
                    panic!("from {}, {name} at {address}: {error}", host.netns)
                });
        }
    }

    let since = SystemTime::now() - Duration::from_secs(1);
    let starts = EventWatcher::start(since, &["label=jobs.job_id".into(), "event=start".into()]);
    let local = env.log_dir.join("local");
    let downloads = env.log_dir.join("downloads");
    std::fs::create_dir_all(&local).expect("create the local directory");

    // --- 60 jobs on three hosts ------------------------------------------
    let specs: Vec<Spec> = (0..JOBS).map(|index| Spec::new(index, &local)).collect();
    let submitting = Instant::now();
    let job_ids = on_clients(JOBS, |index| specs[index].submit(&env));
    let statuses = on_clients(JOBS, |index| {
        specs[index].check(&env, &job_ids[index], &downloads)
    });
    let batch_took = submitting.elapsed();
    let mut per_worker: BTreeMap<String, usize> = ids.iter().map(|id| (id.clone(), 0)).collect();
    for (index, status) in statuses.iter().enumerate() {
        let worker = worker_of(status);
        *per_worker
            .get_mut(&worker)
            .unwrap_or_else(|| panic!("job {index} ran on {worker}, not one of {ids:?}")) += 1;
        assert_eq!(status["attempt"], 1, "job {index}: {status}");
    }
    eprintln!("{JOBS} jobs in {batch_took:?}; jobs per worker: {per_worker:?}");
    for (worker, count) in &per_worker {
        assert!(
            *count > 0,
            "worker {worker} ran none of the jobs: {per_worker:?}"
        );
    }
    // Docker's own witness: each job's container was made by its worker.
    for event in starts.events() {
        if let Some(index) = event
            .job_id
            .as_ref()
            .and_then(|id| job_ids.iter().position(|j| j == id))
        {
            assert_eq!(
                event.worker_id.as_deref(),
                Some(worker_of(&statuses[index]).as_str()),
                "job {index}'s container"
            );
        }
    }

    // --- an interactive run through a worker in a namespace --------------
    // On the last worker, the only one not drained: its Docker socket is
    // the proxy's (disarmed), so the attach's half-close of stdin crosses
    // it too. From here on only that worker takes jobs: a running one, an
    // interactive one, then two whose containers its Docker proxy never
    // lets it create.
    let doomed = &ids[WORKERS - 1];
    for id in &ids[..WORKERS - 1] {
        env.jobs(&["workers", "drain", id]).assert_success();
    }
    let stdin: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 256) as u8).collect();
    let interactive = cli::run_bounded(
        env.jobs_command(&["run", "-i", "--", "sh", "-c", "cat; exit 5"]),
        Some(&stdin),
        DEADLINE,
    );
    interactive.assert_code(5);
    assert_bytes_eq(&interactive.stdout, &stdin, "the interactive run's stdout");
    let interactive_id = env.db_last_job_id();
    assert_eq!(&worker_of(&env.status(&interactive_id)), doomed);

    // --- kill -9 of a worker that holds claimed work ---------------------
    let running = env.run_detached(&["--", "sh", "-c", "echo started; sleep 600"]);
    env.wait_for_state(&running, "running", DEADLINE);
    wait_for_logs(&env, &running, b"started\n", DEADLINE);
    assert_eq!(&worker_of(&env.status(&running)), doomed);
    proxy.arm();
    let held: Vec<Spec> = (JOBS..JOBS + 2)
        .map(|index| Spec::new(index, &local))
        .collect();
    let held_ids: Vec<String> = held.iter().map(|spec| spec.submit(&env)).collect();
    wait_until("the doomed worker to hold both creates", DEADLINE, || {
        (proxy.held_starts() == held.len()).then_some(())
    });
    for id in &held_ids {
        let job = env.db_job(id).expect("stored");
        assert_eq!(
            (job.state.as_str(), job.started),
            ("starting", false),
            "{job:?}"
        );
        assert_eq!(&worker_of(&env.status(id)), doomed);
    }

    workers[WORKERS - 1].kill();
    let killed = Instant::now();
    for id in &ids[..WORKERS - 1] {
        env.jobs(&["workers", "drain", "--undo", id])
            .assert_success();
    }
    // The running job: `lost` within a lease and a reaper interval (two
    // more seconds for the polls on a loaded machine), no exit code.
    let lost = env.wait_for_state(&running, "lost", DEADLINE);
    let lost_after = killed.elapsed();
    let bound = Duration::from_secs(LEASE_SECONDS + REAPER_SECONDS + 2);
    assert!(
        lost_after <= bound,
        "lost after {lost_after:?}, more than {bound:?}"
    );
    assert_eq!(
        (lost.reason.as_deref(), lost.exit_code),
        (Some("worker lost"), None),
        "{lost:?}"
    );
    env.jobs(&["wait", &running])
        .assert_code(125)
        .assert_stderr_contains("worker lost");
    // The claimed ones: queued again, run by the others, as their commands
    // ended.
    let mut taken_over_by = Vec::new();
    for (spec, id) in held.iter().zip(&held_ids) {
        let status = spec.check(&env, id, &downloads);
        let worker = worker_of(&status);
        assert!(
            ids[..WORKERS - 1].contains(&worker),
            "job {} ran on {worker} after {doomed} died",
            spec.index
        );
        assert_eq!(
            status["attempt"], 2,
            "claimed once by the dead worker: {status}"
        );
        taken_over_by.push(worker);
    }

    // The dead worker, back on its host with the same id, removes the
    // container of its lost job.
    workers[WORKERS - 1] = env.start_worker_on(&network.hosts[WORKERS - 1], doomed, &[]);
    for worker in &mut workers {
        let label = worker.label();
        let gone = jobs_e2e::poll::poll_until(DEADLINE, || {
            containers_with_label(&label).is_empty().then_some(())
        });
        assert!(
            gone.is_some(),
            "containers left: {}",
            describe_containers_with_label(&label)
        );
        worker.assert_alive();
    }
    assert_eq!(env.db_job(&running).expect("stored").state, "lost");

    // No job ran twice: one container start each, whoever ran it.
    let every_job: Vec<&String> = job_ids
        .iter()
        .chain(&held_ids)
        .chain([&running, &interactive_id])
        .collect();
    let per_job = wait_until("a start event of every job", DEADLINE, || {
        let per_job = starts_per_job(&starts);
        every_job
            .iter()
            .all(|id| per_job.contains_key(*id))
            .then_some(per_job)
    });
    for id in &every_job {
        assert_eq!(per_job.get(*id), Some(&1), "container starts of job {id}");
    }
    env.finish();
    eprintln!(
        "multi_host: {JOBS} jobs in {batch_took:?} ({per_worker:?}); interactive on {doomed}; \
         running job lost {lost_after:?} after the kill; claimed jobs taken over by {taken_over_by:?}; \
         {:?} in all",
        started.elapsed()
    );
}
