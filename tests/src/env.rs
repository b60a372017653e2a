//! [`TestEnv`]: one isolated `jobs` system per test.
//!
//! Each test gets its own PostgreSQL database, its own AMQP queue, its own
//! worker id (which labels every container the worker makes) and its own
//! admin token, so tests can run in parallel against the same services.
//! The API and the worker are the real binaries; their stderr goes to
//! `target/e2e-logs/<test>/`, and when a test fails the paths and the last
//! lines of those logs are printed.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection};

use crate::cli::{BackgroundCli, CliOutput, DEFAULT_CLI_TIMEOUT, run_bounded};
use crate::netns::Host;
use crate::poll::poll_until;
use crate::rabbit_cluster::RabbitCluster;
use crate::services::{PrivateMoto, PrivatePostgres, PrivateRabbit, free_port_on};
use crate::slow_disk::SlowDisk;
use crate::{DEMO_APP, TEST_IMAGE, binaries, docker};

/// The PostgreSQL server, as a role that may create databases
/// (`deploy/setup.sh` makes it).
const DEFAULT_POSTGRES_URL: &str = "postgres://jobs:jobs@127.0.0.1:5432";
/// The RabbitMQ server.
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// How long the API and the worker may take to say they are ready.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the worker may take to remove the containers of ended jobs.
const CONTAINER_REMOVAL_TIMEOUT: Duration = Duration::from_secs(60);
/// The worker's lease, as given to `JOBS_LEASE`.
pub const WORKER_LEASE: &str = "30s";
/// The grace between SIGTERM and SIGKILL when a job is canceled or times
/// out, as given to `JOBS_STOP_GRACE`.
pub const WORKER_STOP_GRACE: &str = "2s";

/// The S3-compatible server of `deploy/setup.sh` (moto).
pub const S3_ENDPOINT: &str = "http://127.0.0.1:9000";
/// Set to N (`JOBS_E2E_WARM=2`), every test env's app `demo` keeps N warm
/// containers on its worker, and the env waits for them before the test
/// goes on: the suites of normal runs then run through the warm pool.
pub const WARM_ENV: &str = "JOBS_E2E_WARM";

/// The warm pool size [`WARM_ENV`] asks for, if any.
pub fn warm_from_env() -> Option<u32> {
    let value = std::env::var(WARM_ENV).ok()?;
    let warm = value
        .parse()
        .unwrap_or_else(|_| panic!("{WARM_ENV}={value}: not a number"));
    (warm > 0).then_some(warm)
}

/// Where the API and the worker of a [`TestEnv`] keep uploads and artifacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ObjectStoreKind {
    /// `file://` in the test's log directory (the default).
    #[default]
    File,
    /// A fresh bucket of the S3 server at [`S3_ENDPOINT`] (or of a private
    /// one, [`TestEnvOptions::on_address`]).
    S3,
}

/// The object store of one [`TestEnv`].
#[derive(Debug, Clone)]
pub struct TestObjectStore {
    pub kind: ObjectStoreKind,
    /// What `JOBS_OBJECT_STORE` is set to.
    pub url: String,
    /// The bucket, for S3.
    pub bucket: Option<String>,
    /// The S3 server, for S3.
    pub endpoint: String,
    /// The directory, for `file://`.
    pub dir: Option<PathBuf>,
}

impl TestObjectStore {
    fn new(kind: ObjectStoreKind, log_dir: &Path, unique: &str, endpoint: &str) -> Self {
        match kind {
            ObjectStoreKind::File => {
                let dir = log_dir.join("objects");
                TestObjectStore {
                    kind,
                    url: format!("file://{}", dir.display()),
                    bucket: None,
                    endpoint: String::new(),
                    dir: Some(dir),
                }
            }
            ObjectStoreKind::S3 => {
                let bucket = format!("jobs-e2e-{unique}");
                // An unsigned CreateBucket, which moto accepts.
                let created =
                    crate::http::request(endpoint, "PUT", &format!("/{bucket}"), None, None);
                assert_eq!(
                    created.status, 200,
                    "creating the bucket {bucket} on {endpoint} (run deploy/setup.sh): {created:?}"
                );
                TestObjectStore {
                    kind,
                    url: format!("s3://{bucket}/e2e"),
                    bucket: Some(bucket),
                    endpoint: endpoint.to_owned(),
                    dir: None,
                }
            }
        }
    }

    /// The environment the API and the worker need for this store.
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("JOBS_OBJECT_STORE", self.url.clone())];
        if self.kind == ObjectStoreKind::S3 {
            env.extend([
                ("AWS_ENDPOINT", self.endpoint.clone()),
                ("AWS_ALLOW_HTTP", "true".to_owned()),
                ("AWS_ACCESS_KEY_ID", "test".to_owned()),
                ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
                ("AWS_REGION", "us-east-1".to_owned()),
            ]);
        }
        env
    }

    /// Deletes an S3 test bucket and what is in it: moto keeps objects in
    /// memory. Best effort.
    fn remove_bucket(&self) {
        let Some(bucket) = &self.bucket else { return };
        for key in self.keys() {
            crate::http::request(
                &self.endpoint,
                "DELETE",
                &format!("/{bucket}/{key}"),
                None,
                None,
            );
        }
        crate::http::request(&self.endpoint, "DELETE", &format!("/{bucket}"), None, None);
    }

    /// Every object key in the store, sorted (under the prefix, for S3).
    pub fn keys(&self) -> Vec<String> {
        let mut keys = match self.kind {
            ObjectStoreKind::File => {
                let dir = self.dir.as_ref().expect("a file store has a directory");
                let mut keys = Vec::new();
                collect_files(dir, dir, &mut keys);
                keys
            }
            ObjectStoreKind::S3 => {
                let bucket = self.bucket.as_ref().expect("an S3 store has a bucket");
                let listed = crate::http::request(
                    &self.endpoint,
                    "GET",
                    &format!("/{bucket}?list-type=2&max-keys=1000"),
                    None,
                    None,
                );
                assert_eq!(listed.status, 200, "listing {bucket}: {listed:?}");
                listed
                    .body
                    .split("<Key>")
                    .skip(1)
                    .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
                    .collect()
            }
        };
        keys.sort();
        keys
    }
}

fn collect_files(root: &Path, dir: &Path, keys: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(root, &path, keys);
        } else if let Ok(relative) = path.strip_prefix(root) {
            // Staging files of uploads in progress start with a `#`.
            if !relative.to_string_lossy().contains('#') {
                keys.push(relative.to_string_lossy().into_owned());
            }
        }
    }
}

/// The state of one job as stored, for assertions the CLI cannot make.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredJob {
    pub state: String,
    pub attempt: i32,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    /// Whether `started_at` is set: the container was started.
    pub started: bool,
}

impl StoredJob {
    pub fn is_terminal(&self) -> bool {
        !matches!(self.state.as_str(), "queued" | "starting" | "running")
    }
}

/// What a [`TestEnv`] runs on, beyond the defaults of [`TestEnv::start`].
/// Fault tests use private services ([`crate::services`]) that they may
/// stop and kill; every other test shares the machine's.
#[derive(Debug, Clone, Default)]
pub struct TestEnvOptions {
    /// Jobs the worker runs at once (at least 1).
    pub slots: u32,
    /// A PostgreSQL cluster of this test's own instead of the shared one.
    pub private_postgres: bool,
    /// The size in MiB of the private cluster's own disk, if it has one.
    pub private_postgres_disk_mib: Option<u64>,
    /// The latencies of the private cluster's disk, if it is a slow one.
    pub private_postgres_slow_disk: Option<SlowDisk>,
    /// A RabbitMQ node of this test's own, with these `rabbitmq.conf`
    /// lines, instead of the shared one.
    pub private_rabbit: Option<Vec<String>>,
    /// A RabbitMQ cluster of this test's own, of this many nodes, instead
    /// of the shared broker; the servers get every node's URL.
    pub private_rabbit_cluster: Option<usize>,
    /// Extra environment of the API, such as `JOBS_REAPER_INTERVAL`.
    pub api_env: Vec<(String, String)>,
    /// Extra environment of the worker, such as `JOBS_LEASE`; it applies to
    /// every restart too, and to [`TestEnv::start_worker_on`].
    pub worker_env: Vec<(String, String)>,
    /// Where uploads and artifacts go.
    pub objects: ObjectStoreKind,
    /// An address of this machine other than 127.0.0.1 that the API and
    /// private services listen on, and that every URL names
    /// ([`Self::on_address`]).
    pub address: Option<Ipv4Addr>,
    /// No worker of the env's own: the test starts its workers with
    /// [`TestEnv::start_worker_on`].
    pub no_worker: bool,
}

impl TestEnvOptions {
    pub fn new(slots: u32) -> Self {
        TestEnvOptions {
            slots,
            ..TestEnvOptions::default()
        }
    }

    pub fn private_postgres(mut self) -> Self {
        self.private_postgres = true;
        self
    }

    /// A private cluster on a disk of its own of `mib` MiB, that the test
    /// fills ([`PrivatePostgres::fill_disk`]).
    pub fn private_postgres_on_own_disk(mut self, mib: u64) -> Self {
        self.private_postgres = true;
        self.private_postgres_disk_mib = Some(mib);
        self
    }

    /// A private cluster on a slow disk ([`SlowDisk`]), fsync on.
    pub fn private_postgres_on_slow_disk(mut self, slow: SlowDisk) -> Self {
        self.private_postgres = true;
        self.private_postgres_slow_disk = Some(slow);
        self
    }

    pub fn private_rabbit(mut self, config_lines: &[&str]) -> Self {
        self.private_rabbit = Some(config_lines.iter().map(|l| (*l).to_owned()).collect());
        self
    }

    pub fn private_rabbit_cluster(mut self, nodes: usize) -> Self {
        self.private_rabbit_cluster = Some(nodes);
        self
    }

    pub fn api_env(mut self, name: &str, value: &str) -> Self {
        self.api_env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn worker_env(mut self, name: &str, value: &str) -> Self {
        self.worker_env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn objects(mut self, kind: ObjectStoreKind) -> Self {
        self.objects = kind;
        self
    }

    /// Everything on `address` instead of loopback, as for workers on other
    /// hosts: a private PostgreSQL and RabbitMQ, and for S3 a private moto,
    /// listen there (the shared services listen on 127.0.0.1 only), and so
    /// does the API, which advertises that address to the workers
    /// (`JOBS_ADVERTISE_URL`).
    pub fn on_address(mut self, address: Ipv4Addr) -> Self {
        self.address = Some(address);
        self.private_postgres = true;
        self.private_rabbit.get_or_insert_with(Vec::new);
        self
    }

    pub fn no_worker(mut self) -> Self {
        self.no_worker = true;
        self
    }
}

/// One running `jobs` system: API, worker, database and queue.
pub struct TestEnv {
    /// The test's name, also the name of its log directory.
    pub name: String,
    /// Where the servers' logs go.
    pub log_dir: PathBuf,
    /// The PostgreSQL server, without a database name.
    pub postgres_url: String,
    pub database: String,
    pub database_url: String,
    pub amqp_url: String,
    pub queue: String,
    pub worker_id: String,
    pub admin_token: String,
    pub slots: u32,
    /// Where uploads and artifacts go.
    pub objects: TestObjectStore,
    api_url: Option<String>,
    /// Extra environment of the API ([`TestEnv::start_with_api_env`]).
    api_env: Vec<(String, String)>,
    /// Extra environment of every CLI command, such as `JOBS_CA_CERT`.
    cli_env: Vec<(String, String)>,
    api: Option<Server>,
    /// Set by [`TestEnv::start_second_api`].
    second_api: Option<Server>,
    worker: Option<Server>,
    pool: Option<PgPool>,
    database_created: bool,
    /// Extra environment of every worker start.
    worker_env: Vec<(String, String)>,
    /// Set by [`TestEnvOptions::private_postgres`]; dropped after the servers.
    private_postgres: Option<PrivatePostgres>,
    /// Set by [`TestEnvOptions::private_rabbit`].
    private_rabbit: Option<PrivateRabbit>,
    /// Set by [`TestEnvOptions::private_rabbit_cluster`].
    rabbit_cluster: Option<RabbitCluster>,
    /// Set by [`TestEnvOptions::on_address`] with S3; held only so that it
    /// lives as long as the env (its objects go with it).
    _private_moto: Option<PrivateMoto>,
    /// Set by [`TestEnvOptions::on_address`].
    address: Option<Ipv4Addr>,
    runtime: tokio::runtime::Runtime,
}

impl TestEnv {
    /// Starts a fresh system whose worker runs `slots` jobs at once, and
    /// creates the app `demo` with the busybox test image.
    pub fn start(slots: u32) -> TestEnv {
        Self::start_with_api_env(slots, &[], &[])
    }

    /// Like [`TestEnv::start`], with extra environment variables for the API
    /// and for every CLI command. When the API gets `JOBS_TLS_CERT`, its URL
    /// is `https://`; the CLI then needs `JOBS_CA_CERT` in `cli_env` to set
    /// up the app `demo`.
    pub fn start_with_api_env(
        slots: u32,
        api_env: &[(&str, &str)],
        cli_env: &[(&str, &str)],
    ) -> TestEnv {
        Self::start_with_objects(slots, ObjectStoreKind::File, api_env, cli_env)
    }

    /// Starts a system as `options` say, with the file object store.
    pub fn start_with(options: TestEnvOptions) -> TestEnv {
        Self::start_full(options, &[])
    }

    /// Like [`TestEnv::start_with_api_env`], with uploads and artifacts in
    /// the given kind of object store.
    pub fn start_with_objects(
        slots: u32,
        objects: ObjectStoreKind,
        api_env: &[(&str, &str)],
        cli_env: &[(&str, &str)],
    ) -> TestEnv {
        let mut options = TestEnvOptions::new(slots).objects(objects);
        options.api_env = owned_pairs(api_env);
        Self::start_full(options, cli_env)
    }

    fn start_full(options: TestEnvOptions, cli_env: &[(&str, &str)]) -> TestEnv {
        let slots = options.slots;
        // Fail early and clearly when the build or the machine is not ready.
        let api_binary = binaries::jobs_api();
        let worker_binary = binaries::jobs_worker();
        binaries::jobs_cli();
        assert!(
            docker::docker_is_up(),
            "docker does not answer `docker info`: run deploy/setup.sh"
        );
        let image_present = Command::new("docker")
            .args(["image", "inspect", TEST_IMAGE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            image_present,
            "the image {TEST_IMAGE} is missing: run deploy/setup.sh (or deploy/build-test-image.sh)"
        );

        let name = current_test_name();
        let log_dir = binaries::target_dir().join("e2e-logs").join(&name);
        let _ = std::fs::remove_dir_all(&log_dir);
        std::fs::create_dir_all(&log_dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", log_dir.display()));

        let unique = uuid::Uuid::now_v7().simple().to_string();
        let address = options.address;
        let private_postgres = options.private_postgres.then(|| {
            match (
                options.private_postgres_slow_disk,
                options.private_postgres_disk_mib,
                address,
            ) {
                (Some(slow), ..) => PrivatePostgres::start_on_slow_disk(&log_dir, slow),
                (None, Some(mib), _) => PrivatePostgres::start_on_own_disk(&log_dir, mib),
                (None, None, Some(address)) => PrivatePostgres::start_on_address(&log_dir, address),
                (None, None, None) => PrivatePostgres::start(&log_dir),
            }
        });
        let private_rabbit = options.private_rabbit.as_ref().map(|lines| {
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let address = address.unwrap_or(Ipv4Addr::LOCALHOST);
            PrivateRabbit::start_on_address(&log_dir, address, &lines)
        });
        let rabbit_cluster = options
            .private_rabbit_cluster
            .map(|nodes| RabbitCluster::start(&log_dir, nodes));
        let private_moto = address
            .filter(|_| options.objects == ObjectStoreKind::S3)
            .map(|address| PrivateMoto::start_on_address(&log_dir, address));
        let postgres_url = match &private_postgres {
            Some(postgres) => postgres.url(),
            None => std::env::var("JOBS_E2E_POSTGRES_URL")
                .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into()),
        };
        let amqp_url = match (&private_rabbit, &rabbit_cluster) {
            (Some(rabbit), _) => rabbit.url(),
            (None, Some(cluster)) => cluster.urls(),
            (None, None) => {
                std::env::var("JOBS_E2E_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.into())
            }
        };
        let database = format!("jobs_e2e_{unique}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let endpoint = private_moto
            .as_ref()
            .map_or_else(|| S3_ENDPOINT.to_owned(), PrivateMoto::endpoint);
        let objects = TestObjectStore::new(options.objects, &log_dir, &unique, &endpoint);
        let mut env = TestEnv {
            name,
            log_dir,
            database_url: format!("{postgres_url}/{database}"),
            postgres_url,
            database,
            amqp_url,
            queue: format!("jobs.e2e.{unique}"),
            worker_id: format!("e2e-{unique}"),
            admin_token: format!(
                "e2e-admin-{}{}",
                uuid::Uuid::now_v7().simple(),
                uuid::Uuid::now_v7().simple()
            ),
            slots,
            objects,
            api_url: None,
            api_env: options.api_env,
            cli_env: owned_pairs(cli_env),
            api: None,
            second_api: None,
            worker: None,
            pool: None,
            database_created: false,
            worker_env: options.worker_env,
            private_postgres,
            private_rabbit,
            rabbit_cluster,
            _private_moto: private_moto,
            address,
            runtime,
        };
        // From here on, a panic drops `env`, which cleans up what exists and
        // prints the servers' logs.
        env.create_database();
        env.start_api(&api_binary);
        if !options.no_worker {
            env.start_worker(&worker_binary);
        }
        match warm_from_env() {
            None => {
                env.jobs(&["apps", "create", DEMO_APP, "--image", TEST_IMAGE])
                    .assert_success();
            }
            Some(warm) => {
                let warm = warm.to_string();
                env.jobs(&[
                    "apps", "create", DEMO_APP, "--image", TEST_IMAGE, "--warm", &warm,
                ])
                .assert_success();
                if !options.no_worker {
                    env.wait_for_warm_containers(warm.parse().expect("a number"));
                }
            }
        };
        env
    }

    /// Waits until this env's worker has exactly `count` warm containers
    /// that no job took, started and waiting.
    #[track_caller]
    pub fn wait_for_warm_containers(&self, count: usize) -> Vec<String> {
        let label = self.worker_label();
        let seen = poll_until(CONTAINER_REMOVAL_TIMEOUT, || {
            let warm = docker::waiting_warm_containers(&label);
            (warm.len() == count).then_some(warm)
        });
        seen.unwrap_or_else(|| {
            panic!(
                "worker {} did not get to {count} warm containers within {CONTAINER_REMOVAL_TIMEOUT:?}:\n{}",
                self.worker_id,
                docker::describe_containers_with_label(&label)
            )
        })
    }

    fn create_database(&mut self) {
        let admin_url = format!("{}/postgres", self.postgres_url);
        let create = format!("create database \"{}\"", self.database);
        self.runtime.block_on(async {
            let mut admin = PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|error| {
                    panic!("cannot connect to {admin_url}: {error} (run deploy/setup.sh)")
                });
            sqlx::raw_sql(AssertSqlSafe(create))
                .execute(&mut admin)
                .await
                .expect("create the test database");
            let _ = admin.close().await;
        });
        // Dropped at the end, even if what follows fails.
        self.database_created = true;
        let pool = self
            .runtime
            .block_on(
                PgPoolOptions::new()
                    .max_connections(2)
                    .connect(&self.database_url),
            )
            .expect("connect to the test database");
        self.pool = Some(pool);
    }

    fn server_command(&self, binary: &Path) -> Command {
        self.server_env(Command::new(binary))
    }

    /// `command` (a server, or a wrapper that execs one) with the
    /// environment every server gets.
    fn server_env(&self, mut command: Command) -> Command {
        remove_inherited_jobs_env(&mut command);
        command
            .env("JOBS_DATABASE_URL", &self.database_url)
            .env("JOBS_AMQP_URL", &self.amqp_url)
            .env("JOBS_AMQP_QUEUE", &self.queue)
            .envs(self.objects.env())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            // Logs go to files: no colour codes in them.
            .env("NO_COLOR", "1");
        command
    }

    fn start_api(&mut self, binary: &Path) {
        let listen = match self.address {
            // A port picked beforehand, so that the advertised URL has it.
            Some(address) => format!("{address}:{}", free_port_on(address)),
            None => "127.0.0.1:0".to_owned(),
        };
        self.spawn_api(binary, "api", &listen);
    }

    /// Kills the API with SIGKILL, as a crash would, and reaps it. Every
    /// connection to it drops.
    pub fn kill_api(&mut self) {
        if let Some(mut api) = self.api.take() {
            api.kill();
        }
    }

    /// Sends SIGTERM to the API, as an operator's restart does, and waits
    /// for it to exit. Panics if it has not within `timeout`.
    pub fn terminate_api(&mut self, timeout: Duration) -> ExitStatus {
        let mut api = self.api.take().expect("the API runs");
        // SAFETY: kill(2) on our own child, which is not reaped yet.
        unsafe { libc::kill(api.child.id() as libc::pid_t, libc::SIGTERM) };
        let status = poll_until(timeout, || api.child.try_wait().ok().flatten());
        let Some(status) = status else {
            let _ = api.child.kill();
            panic!("the API did not exit within {timeout:?} of SIGTERM");
        };
        if let Some(thread) = api.stdout_thread.take() {
            let _ = thread.join();
        }
        status
    }

    /// Starts the API again on the same address, after [`Self::kill_api`]:
    /// clients and workers come back to the URL they knew.
    pub fn restart_api(&mut self) {
        assert!(self.api.is_none(), "kill the API first");
        let address = self
            .api_url()
            .split_once("://")
            .map(|(_, address)| address.to_owned())
            .expect("the API's URL has a scheme");
        self.spawn_api(&binaries::jobs_api(), "api-restarted", &address);
    }

    fn spawn_api(&mut self, binary: &Path, role: &'static str, listen: &str) {
        let (server, url) = self.spawn_api_process(binary, role, listen);
        self.api = Some(server);
        self.api_url = Some(url);
    }

    /// Starts an API process on the env's database, broker and token, and
    /// returns it with its URL once it listens.
    fn spawn_api_process(
        &self,
        binary: &Path,
        role: &'static str,
        listen: &str,
    ) -> (Server, String) {
        let mut command = self.server_command(binary);
        let tls = self.api_env.iter().any(|(name, _)| name == "JOBS_TLS_CERT");
        if self.address.is_some() {
            let scheme = if tls { "https" } else { "http" };
            command.env("JOBS_ADVERTISE_URL", format!("{scheme}://{listen}"));
        }
        command
            .env("JOBS_LISTEN", listen)
            .env("JOBS_ADMIN_TOKEN", &self.admin_token)
            .envs(self.api_env.iter().map(|(name, value)| (name, value)));
        let (server, lines) = Server::spawn(role, command, &self.log_dir);
        let line = wait_for_line(&lines, "api", "listening on 127.0.0.1:PORT", |line| {
            line.starts_with("listening on ")
        });
        let address = line["listening on ".len()..].trim();
        let scheme = if tls { "https" } else { "http" };
        (server, format!("{scheme}://{address}"))
    }

    /// Starts a second API beside the first, as a load balancer would
    /// have several, and returns its URL (for [`Self::jobs_command_via`]).
    pub fn start_second_api(&mut self) -> String {
        assert!(self.second_api.is_none(), "a second API runs already");
        let (server, url) =
            self.spawn_api_process(&binaries::jobs_api(), "api-second", "127.0.0.1:0");
        self.second_api = Some(server);
        url
    }

    /// Kills the worker with SIGKILL, as a crash would, and reaps it. Its
    /// containers keep running.
    pub fn kill_worker(&mut self) {
        if let Some(mut worker) = self.worker.take() {
            worker.kill();
        }
    }

    /// Starts the worker again, with the same id, after [`Self::kill_worker`].
    pub fn restart_worker(&mut self) {
        self.restart_worker_with(&[]);
    }

    /// Like [`Self::restart_worker`], with extra environment variables.
    pub fn restart_worker_with(&mut self, extra_env: &[(&str, &str)]) {
        assert!(self.worker.is_none(), "kill the worker first");
        self.spawn_worker(&binaries::jobs_worker(), "worker-restarted", extra_env);
    }

    /// Sends SIGTERM to the worker and returns its exit status. Panics if
    /// it has not exited within `timeout`.
    pub fn terminate_worker(&mut self, timeout: Duration) -> ExitStatus {
        let mut worker = self.worker.take().expect("the worker runs");
        // SAFETY: kill(2) on our own child, which is not reaped yet.
        unsafe { libc::kill(worker.child.id() as libc::pid_t, libc::SIGTERM) };
        let status = poll_until(timeout, || worker.child.try_wait().ok().flatten());
        let Some(status) = status else {
            let _ = worker.child.kill();
            panic!("the worker did not exit within {timeout:?} of SIGTERM");
        };
        if let Some(thread) = worker.stdout_thread.take() {
            let _ = thread.join();
        }
        status
    }

    /// Sends SIGTERM to the worker and returns at once: the worker drains
    /// while the test goes on; [`StoppingWorker::wait`] gives its status.
    pub fn terminate_worker_async(&mut self) -> StoppingWorker {
        let worker = self.worker.take().expect("the worker runs");
        // SAFETY: kill(2) on our own child, which is not reaped yet.
        unsafe { libc::kill(worker.child.id() as libc::pid_t, libc::SIGTERM) };
        StoppingWorker(worker)
    }

    /// Starts a worker with another id (`ID-suffix`), as on another host,
    /// once the first one is gone; the env then follows that worker.
    pub fn start_other_worker(&mut self, suffix: &str) {
        assert!(self.worker.is_none(), "stop the first worker first");
        self.worker_id = format!("{}-{suffix}", self.worker_id);
        self.spawn_worker(&binaries::jobs_worker(), "worker-other", &[]);
    }

    fn start_worker(&mut self, binary: &Path) {
        self.spawn_worker(binary, "worker", &[]);
    }

    fn spawn_worker(&mut self, binary: &Path, role: &'static str, extra_env: &[(&str, &str)]) {
        let command = self.worker_command(Command::new(binary), &self.worker_id, extra_env);
        let server = self.spawn_ready_worker(role, command, &self.worker_id);
        self.worker = Some(server);
    }

    /// `command` set up as a worker of id `worker_id`.
    fn worker_command(
        &self,
        command: Command,
        worker_id: &str,
        extra_env: &[(&str, &str)],
    ) -> Command {
        let mut command = self.server_env(command);
        command.envs(extra_env.iter().copied());
        command
            .env("JOBS_WORKER_SLOTS", self.slots.to_string())
            .env("JOBS_WORKER_ID", worker_id)
            .env("JOBS_LEASE", WORKER_LEASE)
            .env("JOBS_STOP_GRACE", WORKER_STOP_GRACE)
            // Many tests' workers share this host, and each worker's chain
            // drops what it does not allow: only the test of the firewall
            // turns it on (tests/tests/hostile_tenant.rs).
            .env("JOBS_HOST_FIREWALL", "false")
            // After the defaults, so that the test's own values win.
            .envs(self.worker_env.iter().map(|(name, value)| (name, value)));
        command
    }

    /// Starts a worker and waits until it says it is ready.
    fn spawn_ready_worker(&self, role: &str, command: Command, worker_id: &str) -> Server {
        let (server, lines) = Server::spawn(role, command, &self.log_dir);
        let expected = format!("worker {worker_id} ready");
        wait_for_line(&lines, "worker", &expected, |line| {
            line.trim_end() == expected
        });
        server
    }

    /// Starts a worker of id `worker_id` in `host`'s network namespace, as
    /// on another machine, with this env's settings (slots, lease,
    /// [`TestEnvOptions::worker_env`]) and `extra_env`. Its logs are
    /// `worker-ID.*.log`; several may run beside the env's own worker.
    pub fn start_worker_on(
        &self,
        host: &Host,
        worker_id: &str,
        extra_env: &[(&str, &str)],
    ) -> HostWorker {
        let command = host.command(&binaries::jobs_worker());
        let command = self.worker_command(command, worker_id, extra_env);
        let server = self.spawn_ready_worker(&format!("worker-{worker_id}"), command, worker_id);
        HostWorker {
            id: worker_id.to_owned(),
            server: Some(server),
        }
    }

    /// SIGSTOP to the worker: it stops dead, as a VM pause or a long GC
    /// would, with its connections open.
    pub fn pause_worker(&self) {
        self.signal_worker(libc::SIGSTOP);
    }

    /// SIGCONT after [`Self::pause_worker`].
    pub fn resume_worker(&self) {
        self.signal_worker(libc::SIGCONT);
    }

    fn signal_worker(&self, signal: libc::c_int) {
        let worker = self.worker.as_ref().expect("the worker runs");
        // SAFETY: kill(2) on our own child, which is not reaped yet.
        unsafe { libc::kill(worker.child.id() as libc::pid_t, signal) };
    }

    /// Whether the worker process has exited (it is then reaped).
    pub fn worker_exited(&mut self) -> Option<ExitStatus> {
        let worker = self.worker.as_mut()?;
        worker.child.try_wait().ok().flatten()
    }

    /// The private PostgreSQL cluster ([`TestEnvOptions::private_postgres`]).
    pub fn postgres(&mut self) -> &mut PrivatePostgres {
        self.private_postgres
            .as_mut()
            .expect("the env was started with a private postgres")
    }

    /// The private RabbitMQ node ([`TestEnvOptions::private_rabbit`]).
    pub fn rabbit(&mut self) -> &mut PrivateRabbit {
        self.private_rabbit
            .as_mut()
            .expect("the env was started with a private rabbitmq")
    }

    /// The private RabbitMQ cluster ([`TestEnvOptions::private_rabbit_cluster`]).
    pub fn rabbit_cluster(&mut self) -> &mut RabbitCluster {
        self.rabbit_cluster
            .as_mut()
            .expect("the env was started with a private rabbitmq cluster")
    }

    /// The process ids of the API and the worker, to read their memory.
    pub fn server_pids(&self) -> (u32, u32) {
        let pid = |server: &Option<Server>| server.as_ref().expect("the server runs").child.id();
        (pid(&self.api), pid(&self.worker))
    }

    /// The API's base URL, such as `http://127.0.0.1:41234`.
    pub fn api_url(&self) -> &str {
        self.api_url.as_deref().expect("the API is started")
    }

    // --- the CLI ---------------------------------------------------------

    /// A `jobs ARGS` command set up for this system: its API URL, the admin
    /// token and the app `demo`. Tests may change its environment, for
    /// example remove `JOBS_TOKEN`.
    pub fn jobs_command(&self, args: &[&str]) -> Command {
        self.jobs_command_via(self.api_url(), args)
    }

    /// [`Self::jobs_command`] against the API at `api_url`.
    pub fn jobs_command_via(&self, api_url: &str, args: &[&str]) -> Command {
        let mut command = Command::new(binaries::jobs_cli());
        remove_inherited_jobs_env(&mut command);
        command
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .env("JOBS_API_URL", api_url)
            .env("JOBS_TOKEN", &self.admin_token)
            .env("JOBS_APP", DEMO_APP)
            // The API is on loopback: a test that removes JOBS_TOKEN must not
            // pick up the token of a `jobs dev` of this machine instead.
            .env("JOBS_DEV_DATA_DIR", self.log_dir.join("no-jobs-dev"))
            .envs(self.cli_env.iter().map(|(name, value)| (name, value)))
            .args(args);
        command
    }

    /// Runs `jobs ARGS` with stdin on /dev/null (so `run` takes the queued
    /// path), bounded by [`DEFAULT_CLI_TIMEOUT`].
    #[track_caller]
    pub fn jobs(&self, args: &[&str]) -> CliOutput {
        run_bounded(self.jobs_command(args), None, DEFAULT_CLI_TIMEOUT)
    }

    /// Like [`TestEnv::jobs`], with a different deadline.
    #[track_caller]
    pub fn jobs_with_timeout(&self, args: &[&str], timeout: Duration) -> CliOutput {
        run_bounded(self.jobs_command(args), None, timeout)
    }

    /// Runs `jobs ARGS` with `stdin` piped in (not a terminal).
    #[track_caller]
    pub fn jobs_with_stdin(&self, args: &[&str], stdin: &[u8]) -> CliOutput {
        run_bounded(self.jobs_command(args), Some(stdin), DEFAULT_CLI_TIMEOUT)
    }

    /// Starts `jobs ARGS` in the background, stdin on /dev/null.
    #[track_caller]
    pub fn spawn_jobs(&self, args: &[&str]) -> BackgroundCli {
        BackgroundCli::spawn(self.jobs_command(args))
    }

    /// Runs `jobs run -d RUN_ARGS` and returns the job id it printed, after
    /// checking that it printed the id alone and exited 0.
    #[track_caller]
    pub fn run_detached(&self, run_args: &[&str]) -> String {
        let mut args = vec!["run", "-d"];
        args.extend_from_slice(run_args);
        let output = self.jobs(&args);
        output.assert_success();
        job_id_from_detached_output(&output)
    }

    /// `jobs status ID --json`, parsed. Panics unless it exits 0 with a JSON
    /// object.
    #[track_caller]
    pub fn status(&self, job_id: &str) -> serde_json::Value {
        let output = self.jobs(&["status", job_id, "--json"]);
        output.assert_success();
        let status: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("status --json is not JSON ({error}): {output:?}"));
        assert!(
            status.is_object(),
            "status --json is not an object: {output:?}"
        );
        assert_eq!(
            status["id"], job_id,
            "status --json names another job: {status}"
        );
        status
    }

    // --- the database ----------------------------------------------------

    fn pool(&self) -> &PgPool {
        self.pool.as_ref().expect("the test database exists")
    }

    /// How many jobs are stored, whatever their state.
    /// Runs one SQL statement on the test database, to set up a state that
    /// only a crash at an exact moment would produce.
    pub fn db_execute(&self, sql: &str) {
        self.runtime
            .block_on(sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(self.pool()))
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
    }

    pub fn db_count_jobs(&self) -> i64 {
        self.runtime
            .block_on(sqlx::query_scalar("select count(*) from jobs").fetch_one(self.pool()))
            .expect("count jobs")
    }

    /// The ids of all stored jobs, oldest first.
    pub fn db_job_ids(&self) -> Vec<String> {
        self.runtime
            .block_on(
                sqlx::query_scalar("select id from jobs order by created_at, id")
                    .fetch_all(self.pool()),
            )
            .expect("list jobs")
    }

    /// The one number a query of the test database gives.
    #[track_caller]
    pub fn db_query_one(&self, sql: &str) -> i64 {
        self.runtime
            .block_on(sqlx::query_scalar(AssertSqlSafe(sql.to_owned())).fetch_one(self.pool()))
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
    }

    /// The strings of the one column a query of the test database gives.
    #[track_caller]
    pub fn db_query_strings(&self, sql: &str) -> Vec<String> {
        self.runtime
            .block_on(sqlx::query_scalar(AssertSqlSafe(sql.to_owned())).fetch_all(self.pool()))
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
    }

    /// The id of the job created last. Panics if there is none.
    #[track_caller]
    pub fn db_last_job_id(&self) -> String {
        let id: Option<String> = self
            .runtime
            .block_on(
                sqlx::query_scalar("select id from jobs order by created_at desc, id desc limit 1")
                    .fetch_optional(self.pool()),
            )
            .expect("find the last job");
        id.expect("a job was created")
    }

    /// The stored state of one job, if it exists.
    pub fn db_job(&self, job_id: &str) -> Option<StoredJob> {
        self.runtime
            .block_on(
                sqlx::query_as::<_, StoredJob>(
                    "select state, attempt, exit_code, reason, \
                     started_at is not null as started \
                     from jobs where id = $1",
                )
                .bind(job_id)
                .fetch_optional(self.pool()),
            )
            .expect("read a job")
    }

    /// Whether the job's worker recorded that it was about to start its
    /// container (`start_requested_at`).
    pub fn db_start_requested(&self, job_id: &str) -> bool {
        self.runtime
            .block_on(
                sqlx::query_scalar("select start_requested_at is not null from jobs where id = $1")
                    .bind(job_id)
                    .fetch_one(self.pool()),
            )
            .expect("read a job's start intent")
    }

    /// How many stored jobs are in a terminal state.
    pub fn db_count_terminal_jobs(&self) -> i64 {
        self.runtime
            .block_on(
                sqlx::query_scalar(
                    "select count(*) from jobs where state not in ('queued', 'starting', 'running')",
                )
                .fetch_one(self.pool()),
            )
            .expect("count ended jobs")
    }

    /// How long ago the job was created, by the database's clock.
    pub fn db_job_age(&self, job_id: &str) -> Option<Duration> {
        let seconds: Option<f64> = self
            .runtime
            .block_on(
                sqlx::query_scalar(
                    "select extract(epoch from now() - created_at)::float8 from jobs where id = $1",
                )
                .bind(job_id)
                .fetch_optional(self.pool()),
            )
            .expect("read a job's age");
        seconds.map(|seconds| Duration::from_secs_f64(seconds.max(0.0)))
    }

    /// Waits until the stored job satisfies `condition`, and returns it.
    #[track_caller]
    pub fn wait_for_job(
        &self,
        job_id: &str,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&StoredJob) -> bool,
    ) -> StoredJob {
        let mut last = None;
        let found = poll_until(timeout, || {
            let job = self.db_job(job_id);
            let done = job.as_ref().is_some_and(&condition);
            last = job.clone();
            if done { job } else { None }
        });
        found.unwrap_or_else(|| {
            panic!("timed out after {timeout:?} waiting for job {job_id} to be {what}; last seen: {last:?}")
        })
    }

    /// Waits until the stored job is in `state`.
    #[track_caller]
    pub fn wait_for_state(&self, job_id: &str, state: &str, timeout: Duration) -> StoredJob {
        self.wait_for_job(job_id, state, timeout, |job| job.state == state)
    }

    // --- Docker ----------------------------------------------------------

    /// The label every container of this test's worker carries.
    pub fn worker_label(&self) -> String {
        format!("jobs.worker_id={}", self.worker_id)
    }

    /// The ids of this worker's containers, running or not.
    pub fn containers(&self) -> Vec<String> {
        docker::containers_with_label(&self.worker_label())
    }

    /// Watches the `start` and `die` events of this worker's containers
    /// from one second ago on.
    pub fn watch_container_starts_and_dies(&self) -> docker::EventWatcher {
        let since = std::time::SystemTime::now() - Duration::from_secs(1);
        docker::EventWatcher::start(
            since,
            &[
                format!("label={}", self.worker_label()),
                "event=start".into(),
                "event=die".into(),
            ],
        )
    }

    /// Whether the API and the worker are still running.
    #[track_caller]
    pub fn assert_servers_alive(&mut self) {
        for server in [self.api.as_mut(), self.worker.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(status) = server.child.try_wait().expect("try_wait works") {
                panic!(
                    "the {} exited during the test with {status}; see {}",
                    server.role,
                    server.stderr_log.display()
                );
            }
        }
    }

    /// The end of every test: the API and the worker are still up, and no
    /// container with this worker's label is left once the worker has had
    /// a bounded time to remove them.
    #[track_caller]
    pub fn finish(&mut self) {
        self.assert_servers_alive();
        if warm_from_env().is_some() {
            // The warm pool holds containers for the next job: let it go
            // (unless the test deleted the app, and its pool with it).
            let off = self.jobs(&["apps", "set", DEMO_APP, "--warm", "0"]);
            if off.code() != 0 {
                off.assert_cli_error(125, &format!("app \"{DEMO_APP}\" not found"));
            }
        }
        let label = self.worker_label();
        let gone = poll_until(CONTAINER_REMOVAL_TIMEOUT, || {
            docker::containers_with_label(&label)
                .is_empty()
                .then_some(())
        });
        if gone.is_none() {
            panic!(
                "containers of worker {} are left {CONTAINER_REMOVAL_TIMEOUT:?} after their jobs:\n{}",
                self.worker_id,
                docker::describe_containers_with_label(&label)
            );
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if let Some(worker) = self.worker.as_mut() {
            // A paused worker cannot handle SIGTERM.
            // SAFETY: kill(2) on our own child, which is not reaped yet.
            unsafe { libc::kill(worker.child.id() as libc::pid_t, libc::SIGCONT) };
            worker.stop(Duration::from_secs(5));
        }
        docker::remove_containers_with_label(&self.worker_label());
        let deployment: Option<String> = self.pool.as_ref().and_then(|pool| {
            self.runtime
                .block_on(sqlx::query_scalar("select id from deployment").fetch_one(pool))
                .ok()
        });
        docker::remove_leftovers_of_worker(&self.worker_label(), deployment.as_deref());
        for api in [self.api.as_mut(), self.second_api.as_mut()]
            .into_iter()
            .flatten()
        {
            api.stop(Duration::from_secs(3));
        }
        let pool = self.pool.take();
        let database = self.database.clone();
        let database_created = self.database_created;
        let postgres_admin_url = format!("{}/postgres", self.postgres_url);
        let amqp_url = self.amqp_url.clone();
        let queue = self.queue.clone();
        // A private node goes away with the env, and its queues with it.
        let shared_broker = self.private_rabbit.is_none() && self.rabbit_cluster.is_none();
        self.runtime.block_on(async move {
            if let Some(pool) = pool {
                pool.close().await;
            }
            if database_created {
                drop_database(&postgres_admin_url, &database).await;
            }
            if shared_broker {
                delete_queue(&amqp_url, &queue).await;
            }
        });
        if self.objects.kind == ObjectStoreKind::S3 {
            self.objects.remove_bucket();
        }
        if failed {
            self.print_diagnostics();
        }
    }
}

impl TestEnv {
    fn print_diagnostics(&self) {
        eprintln!(
            "\n=== e2e test {} failed; api {}, worker id {}, database {}, queue {}",
            self.name,
            self.api_url.as_deref().unwrap_or("(not started)"),
            self.worker_id,
            self.database,
            self.queue
        );
        for server in [self.api.as_ref(), self.worker.as_ref()]
            .into_iter()
            .flatten()
        {
            eprintln!(
                "=== {} stderr: {} (stdout: {})",
                server.role,
                server.stderr_log.display(),
                server.stdout_log.display()
            );
            eprintln!("--- last lines of the {} stderr:", server.role);
            eprintln!("{}", last_lines(&server.stderr_log, 60));
        }
    }
}

async fn drop_database(admin_url: &str, database: &str) {
    let statement = format!("drop database if exists \"{database}\" with (force)");
    match PgConnection::connect(admin_url).await {
        Ok(mut admin) => {
            if let Err(error) = sqlx::raw_sql(AssertSqlSafe(statement))
                .execute(&mut admin)
                .await
            {
                eprintln!("e2e teardown: cannot drop database {database}: {error}");
            }
            let _ = admin.close().await;
        }
        Err(error) => eprintln!("e2e teardown: cannot connect to drop {database}: {error}"),
    }
}

/// Deletes the test's queue, so that test runs leave nothing in RabbitMQ.
/// Best effort and bounded.
pub async fn delete_queue(amqp_url: &str, queue: &str) {
    use lapin::options::QueueDeleteOptions;
    let delete = async {
        let connection =
            lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await?;
        connection.close(200, "e2e teardown".into()).await?;
        Ok::<_, lapin::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(5), delete).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => eprintln!("e2e teardown: cannot delete queue {queue}: {error}"),
        Err(_) => eprintln!("e2e teardown: deleting queue {queue} timed out"),
    }
}

/// A worker that [`TestEnv::start_worker_on`] started in a network
/// namespace. Dropping it stops it (SIGTERM, then SIGKILL) and removes the
/// containers labelled with its id.
pub struct HostWorker {
    pub id: String,
    server: Option<Server>,
}

impl HostWorker {
    /// SIGKILL, as a crash would, and reaps it. Its containers keep running.
    pub fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.kill();
        }
    }

    /// Panics if it exited (it is then reaped).
    #[track_caller]
    pub fn assert_alive(&mut self) {
        let server = self.server.as_mut().expect("the worker runs");
        if let Some(status) = server.child.try_wait().expect("try_wait works") {
            panic!(
                "the worker {} exited during the test with {status}; see {}",
                self.id,
                server.stderr_log.display()
            );
        }
    }

    /// The label every container of this worker carries.
    pub fn label(&self) -> String {
        format!("jobs.worker_id={}", self.id)
    }
}

impl Drop for HostWorker {
    fn drop(&mut self) {
        if let Some(server) = self.server.as_mut() {
            server.stop(Duration::from_secs(5));
            if std::thread::panicking() {
                eprintln!(
                    "=== worker {} stderr: {}\n{}",
                    self.id,
                    server.stderr_log.display(),
                    last_lines(&server.stderr_log, 40)
                );
            }
        }
        docker::remove_containers_with_label(&self.label());
    }
}

/// A worker that got SIGTERM and drains.
pub struct StoppingWorker(Server);

impl StoppingWorker {
    /// Its exit status. Panics if it has not exited within `timeout`.
    #[track_caller]
    pub fn wait(mut self, timeout: Duration) -> ExitStatus {
        let worker = &mut self.0;
        let status = poll_until(timeout, || worker.child.try_wait().ok().flatten());
        let Some(status) = status else {
            let _ = worker.child.kill();
            panic!("the worker did not exit within {timeout:?} of SIGTERM");
        };
        if let Some(thread) = worker.stdout_thread.take() {
            let _ = thread.join();
        }
        status
    }
}

/// One server process (API or worker) with its logs.
struct Server {
    role: String,
    child: Child,
    stderr_log: PathBuf,
    stdout_log: PathBuf,
    stdout_thread: Option<JoinHandle<()>>,
}

impl Server {
    /// SIGKILL, as a crash would; reaps it and ends its stdout reader.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(thread) = self.stdout_thread.take() {
            let _ = thread.join();
        }
    }

    /// Starts `command`, stderr to `<role>.stderr.log`, and returns the
    /// lines of its stdout as they come (they are also written to
    /// `<role>.stdout.log`).
    fn spawn(role: &str, mut command: Command, log_dir: &Path) -> (Server, mpsc::Receiver<String>) {
        let stderr_log = log_dir.join(format!("{role}.stderr.log"));
        let stdout_log = log_dir.join(format!("{role}.stdout.log"));
        // Appended to, so that the logs of every restart of a role are kept.
        let append = |path: &Path| File::options().create(true).append(true).open(path);
        let stderr = append(&stderr_log).expect("open the stderr log");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start the {role}: {error}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stdout_copy = append(&stdout_log).expect("open the stdout log");
        let (sender, receiver) = mpsc::channel();
        let stdout_thread = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let _ = stdout_copy.write_all(&line);
                        // The receiver may be gone once the server is ready.
                        let _ = sender.send(String::from_utf8_lossy(&line).into_owned());
                    }
                }
            }
        });
        let server = Server {
            role: role.to_owned(),
            child,
            stderr_log,
            stdout_log,
            stdout_thread: Some(stdout_thread),
        };
        (server, receiver)
    }

    /// SIGTERM, then SIGKILL after `grace`. Never panics.
    fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => Some(status),
            _ => {
                // SAFETY: kill(2) on our own child, which is not reaped yet.
                unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
                match poll_until(grace, || self.child.try_wait().ok().flatten()) {
                    Some(status) => Some(status),
                    None => {
                        let _ = self.child.kill();
                        self.child.wait().ok()
                    }
                }
            }
        };
        if let Some(thread) = self.stdout_thread.take() {
            let _ = thread.join();
        }
        status
    }
}

/// Waits for the first stdout line of a server that satisfies `is_ready`.
/// Panics if the server exits or [`SERVER_START_TIMEOUT`] passes first.
fn wait_for_line(
    lines: &mpsc::Receiver<String>,
    role: &str,
    expected: &str,
    is_ready: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + SERVER_START_TIMEOUT;
    loop {
        let remaining = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(remaining) {
            Ok(line) if is_ready(&line) => return line,
            Ok(_) => continue,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "the {role} did not print `{expected}` on stdout within {SERVER_START_TIMEOUT:?}"
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the {role} exited before printing `{expected}` on stdout")
            }
        }
    }
}

fn owned_pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

/// The id that `jobs run -d` printed: alone on one line.
#[track_caller]
pub fn job_id_from_detached_output(output: &CliOutput) -> String {
    let text = output.stdout_text();
    let id = text.trim_end_matches('\n');
    assert!(
        !id.is_empty() && !id.contains(char::is_whitespace) && text.ends_with('\n'),
        "run -d prints the job id alone on one line: {output:?}"
    );
    assert!(
        id.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')),
        "job ids are URL-safe: {id:?}"
    );
    id.to_owned()
}

/// The test's name: libtest names the test thread after the test; nextest
/// also passes it as the first free argument.
pub(crate) fn current_test_name() -> String {
    let from_thread = std::thread::current()
        .name()
        .filter(|name| *name != "main")
        .map(str::to_owned);
    let from_args = || std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    let name = from_thread
        .or_else(from_args)
        .unwrap_or_else(|| format!("unnamed-{}", uuid::Uuid::now_v7().simple()));
    name.replace("::", "__")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Removes the `JOBS_*` variables this process inherited, so that only what
/// the harness sets reaches the binaries.
fn remove_inherited_jobs_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("JOBS_") {
            command.env_remove(name);
        }
    }
}

fn last_lines(path: &Path, count: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(count)..].join("\n")
        }
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}
