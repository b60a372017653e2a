//! The store contract: one set of tests, run against every implementation.
//!
//! Each test is an `async fn(Store)` written once; [`contract!`] runs it
//! against a fresh SQLite file in a temporary directory and a fresh
//! PostgreSQL database. Both backends are required: PostgreSQL is found at
//! `JOBS_TEST_POSTGRES_URL` (default `postgres://jobs:jobs@127.0.0.1:5432`,
//! a role that may create databases; `deploy/setup.sh` starts it).

use std::{
    collections::{BTreeMap, HashSet},
    future::Future,
    path::PathBuf,
    time::Duration,
};

use chrono::{SubsecRound, Utc};
use jobs_core::hardening::Hardening;
use jobs_core::{
    JobState, Role, Size,
    scheduling::Priority,
    wire::{
        App, AppCreate, AppUpdate, Artifact, Capacity, Group, GroupCreate, Job, JobCreate,
        LogStream, Upload, UploadRef,
    },
};
use jobs_store::{
    AttachEndpoint, CancelOutcome, ClaimedJob, Fence, Heartbeat, JOB_EVENTS_CHANNEL, NewChunk,
    NewToken, RawOffsets, Store, StoreError,
};
use sqlx::{AssertSqlSafe, Connection, postgres::PgConnection};
use tokio::sync::broadcast;

const DEFAULT_POSTGRES_URL: &str = "postgres://jobs:jobs@127.0.0.1:5432";
/// The longest any one contract test may take.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a condition (an expired lease, a wake-up) may take to show.
const WAIT: Duration = Duration::from_secs(10);
/// A lease nothing in a test outlives.
const LEASE: Duration = Duration::from_secs(300);
/// A lease that is over almost at once.
const TINY_LEASE: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty store, and what to remove once the test is over.
struct Fixture {
    store: Store,
    cleanup: Cleanup,
}

enum Cleanup {
    Directory(PathBuf),
    Database { admin_url: String, name: String },
}

impl Fixture {
    async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                // A directory that does not exist yet: connecting creates it
                // and the file.
                let dir = std::env::temp_dir().join(format!(
                    "jobs-store-contract-{}",
                    uuid::Uuid::now_v7().simple()
                ));
                let url = format!("sqlite://{}", dir.join("jobs.db").display());
                let store = Store::connect(&url)
                    .await
                    .unwrap_or_else(|e| panic!("opening the SQLite store at {url}: {e:#}"));
                assert!(matches!(store, Store::Sqlite(_)), "{url} must pick SQLite");
                Fixture {
                    store,
                    cleanup: Cleanup::Directory(dir),
                }
            }
            Backend::Postgres => {
                let base = std::env::var("JOBS_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
                let base = base.trim_end_matches('/').to_owned();
                let admin_url = format!("{base}/postgres");
                let name = format!("jobs_store_{}", uuid::Uuid::now_v7().simple());
                let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!(
                        "the store contract tests need PostgreSQL, which does not answer at \
                         {admin_url}: {e}. Start it with deploy/setup.sh, or point \
                         JOBS_TEST_POSTGRES_URL at a server where the role may create databases."
                    )
                });
                sqlx::query(AssertSqlSafe(format!("create database \"{name}\"")))
                    .execute(&mut admin)
                    .await
                    .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
                let _ = admin.close().await;
                let url = format!("{base}/{name}");
                let store = Store::connect(&url)
                    .await
                    .unwrap_or_else(|e| panic!("connecting the store to {url}: {e:#}"));
                assert!(
                    matches!(store, Store::Postgres(_)),
                    "{url} must pick PostgreSQL"
                );
                Fixture {
                    store,
                    cleanup: Cleanup::Database { admin_url, name },
                }
            }
        }
    }

    async fn teardown(self) {
        let Fixture { store, cleanup } = self;
        let close = async {
            match &store {
                Store::Postgres(pg) => pg.pool().close().await,
                Store::Sqlite(sqlite) => sqlite.pool().close().await,
            }
        };
        // A PostgreSQL listener keeps a connection of the pool; dropping the
        // database with (force) ends it anyway.
        let _ = tokio::time::timeout(Duration::from_millis(500), close).await;
        drop(store);
        match cleanup {
            Cleanup::Directory(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database { admin_url, name } => {
                let dropped = async {
                    let mut admin = PgConnection::connect(&admin_url).await?;
                    sqlx::query(AssertSqlSafe(format!(
                        "drop database if exists \"{name}\" with (force)"
                    )))
                    .execute(&mut admin)
                    .await?;
                    admin.close().await
                };
                if let Err(e) = dropped.await {
                    eprintln!("contract teardown: cannot drop database {name}: {e}");
                }
            }
        }
    }
}

/// Runs `test` against a fresh store of `backend`, then removes the store,
/// whether the test passed or not.
async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let fixture = Fixture::new(backend).await;
    let outcome = tokio::spawn(tokio::time::timeout(
        TEST_TIMEOUT,
        test(fixture.store.clone()),
    ))
    .await;
    fixture.teardown().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("{backend:?}: the test took longer than {TEST_TIMEOUT:?}"),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("{backend:?}: the test task failed: {e}"),
    }
}

/// For each contract test `name`, a module `name` with one test per backend:
/// `name::sqlite` and `name::postgres`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::run(super::Backend::Sqlite, super::$name).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::run(super::Backend::Postgres, super::$name).await;
                }
            }
        )*
    };
}

contract! {
    apps_storage_counts_logs_once_artifacts_and_uploads,
    apps_storage_limits_round_trip_and_reach_the_claim,
    apps_create_get_list,
    apps_update_sets_unsets_and_merges,
    apps_delete_refused_while_a_job_is_active,
    apps_hardening_round_trips_and_reaches_the_claim,
    apps_secret_env_round_trips_and_reaches_the_claim,
    apps_unset_and_unsecret_remove_the_secret_mark,
    apps_warm_round_trips,
    jobs_create_within_refuses_over_the_queued_limit,
    scheduling_shares_slots_between_apps_by_weight,
    scheduling_never_passes_an_app_s_cap,
    scheduling_orders_an_app_s_line_by_priority_then_age,
    claim_batch_takes_several_heads_but_never_passes_a_cap,
    apps_max_running_and_weight_round_trip,
    groups_make_every_task_with_its_index_and_keep_the_parallelism,
    groups_never_pass_their_parallelism_under_concurrent_claims,
    groups_over_the_queued_limit_create_nothing,
    groups_repeat_their_idempotency_key,
    groups_cancel_every_task,
    groups_say_why_a_task_waits_and_go_whole_with_their_app_or_the_purge,
    jobs_create_with_app_defaults_and_overrides,
    jobs_idempotency_key_returns_the_first_job,
    jobs_concurrent_idempotency_key_makes_one_row,
    jobs_expired_idempotency_key_makes_a_new_job,
    jobs_list_newest_first_by_state_with_limit,
    jobs_are_counted_by_state,
    claim_starts_a_queued_job_once,
    claim_concurrent_claims_one_winner,
    mark_running_and_heartbeat,
    stale_fences_change_nothing,
    finish_writes_once,
    cancel_queued_job,
    cancel_running_job,
    requeue_unstarted_job,
    jobs_held_by_worker,
    stop_intents_reach_the_worker_that_takes_over,
    a_job_whose_start_was_requested_is_never_queued_again,
    logs_append_ignores_replays,
    log_raw_offsets_are_each_streams_last_resume_point,
    logs_after_pages,
    logs_binary_round_trip,
    reap_requeues_unstarted_and_loses_running,
    reap_out_of_attempts_and_canceled,
    outbox_unpublished_mark_and_forget,
    notifications_carry_job_ids,
    ping_answers,
    the_deployment_has_one_name,
    tokens_create_find_list_revoke,
    tokens_expire_by_the_database_clock,
    tokens_need_their_app_and_go_with_it,
    interactive_jobs_are_never_published_and_carry_their_endpoint,
    interactive_jobs_are_lost_not_requeued,
    workers_registry_lists_live_workers_with_free_slots,
    drained_workers_claim_nothing_and_keep_their_drain,
    silent_workers_are_forgotten_unless_draining_or_holding_a_job,
    queued_jobs_know_their_place_and_the_capacity,
    queue_timeouts_cancel_jobs_no_worker_started,
    uploads_are_taken_by_one_job_in_order,
    uploads_of_another_app_or_unknown_are_refused_creating_nothing,
    artifacts_are_recorded_fenced_before_the_end,
    purge_deletes_long_ended_jobs_and_free_uploads,
    deleting_an_app_names_the_objects_it_leaves,
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn create_app(store: &Store, name: &str) -> App {
    store
        .create_app(&AppCreate {
            name: name.to_owned(),
            image: "alpine:3.20".to_owned(),
            env: env(&[("APP_ONLY", "app"), ("SHARED", "from-app")]),
            size: None,
            timeout_seconds: None,
            warm: None,
            max_running: None,
            weight: None,
            max_output_bytes: None,
            storage_quota_bytes: None,
            secret_env: vec![],
            hardening: Default::default(),
        })
        .await
        .expect("create_app")
}

fn job_create() -> JobCreate {
    JobCreate {
        command: vec!["echo".to_owned(), "hello".to_owned()],
        env: env(&[("SHARED", "from-job"), ("JOB_ONLY", "job")]),
        ..JobCreate::default()
    }
}

async fn create_job(store: &Store, app: &str) -> Job {
    let (job, created) = store
        .create_job(app, &job_create())
        .await
        .expect("create_job");
    assert!(created);
    job
}

async fn claim(store: &Store, job_id: &str, worker: &str, lease: Duration) -> ClaimedJob {
    store
        .claim(job_id, worker, lease)
        .await
        .expect("claim")
        .unwrap_or_else(|| panic!("job {job_id} could not be claimed"))
}

async fn job(store: &Store, id: &str) -> Job {
    store.get_job(id).await.expect("get_job")
}

fn chunk(seq: i64, data: &[u8]) -> NewChunk {
    NewChunk {
        seq,
        stream: LogStream::Stdout,
        time: Utc::now(),
        data: data.to_vec(),
        raw_end: None,
    }
}

/// Polls `check` until it returns `Some`, for at most [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (at most [`WAIT`]) for `job_id` on `receiver`, skipping other ids.
async fn expect_wake_up(receiver: &mut broadcast::Receiver<String>, job_id: &str, what: &str) {
    let wait = async {
        loop {
            match receiver.recv().await {
                Ok(id) if id == job_id => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("{what}: channel closed"),
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("{what}: no wake-up for {job_id} within {WAIT:?}"));
}

// ---------------------------------------------------------------------------
// Apps
// ---------------------------------------------------------------------------

async fn apps_create_get_list(store: Store) {
    let created = create_app(&store, "web").await;
    assert_eq!(created.name, "web");
    assert_eq!(created.image, "alpine:3.20");
    assert_eq!(
        created.env,
        env(&[("APP_ONLY", "app"), ("SHARED", "from-app")])
    );
    assert_eq!(created.size, Size::M);
    assert_eq!(created.timeout_seconds, 3600);
    assert_eq!(created.warm, 0, "no warm pool by default");
    assert_eq!(created.created_at, created.updated_at);
    let skew = (Utc::now() - created.created_at).num_seconds().abs();
    assert!(skew < 60, "created_at is {skew} s away from now");

    let other = store
        .create_app(&AppCreate {
            name: "api".to_owned(),
            image: "busybox".to_owned(),
            env: BTreeMap::new(),
            size: Some(Size::XL),
            timeout_seconds: Some(60),
            warm: None,
            max_running: None,
            weight: None,
            max_output_bytes: None,
            storage_quota_bytes: None,
            secret_env: vec![],
            hardening: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(other.size, Size::XL);
    assert_eq!(other.timeout_seconds, 60);

    assert_eq!(store.get_app("web").await.unwrap(), created);
    let names: Vec<String> = store
        .list_apps()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["api", "web"], "apps are listed by name");

    match store.get_app("nope").await {
        Err(StoreError::AppNotFound(name)) => assert_eq!(name, "nope"),
        other => panic!("expected AppNotFound, got {other:?}"),
    }
    let again = store
        .create_app(&AppCreate {
            name: "web".to_owned(),
            image: "other".to_owned(),
            env: BTreeMap::new(),
            size: None,
            timeout_seconds: None,
            warm: None,
            max_running: None,
            weight: None,
            max_output_bytes: None,
            storage_quota_bytes: None,
            secret_env: vec![],
            hardening: Default::default(),
        })
        .await;
    match again {
        Err(StoreError::AppExists(name)) => assert_eq!(name, "web"),
        other => panic!("expected AppExists, got {other:?}"),
    }
    assert_eq!(store.get_app("web").await.unwrap().image, "alpine:3.20");
}

async fn apps_update_sets_unsets_and_merges(store: Store) {
    let created = create_app(&store, "web").await;
    let updated = store
        .update_app(
            "web",
            &AppUpdate {
                image: Some("debian:12".to_owned()),
                env: env(&[("NEW", "1"), ("SHARED", "changed")]),
                unset: vec!["APP_ONLY".to_owned(), "ABSENT".to_owned()],
                size: Some(Size::L),
                timeout_seconds: Some(120),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.image, "debian:12");
    assert_eq!(updated.env, env(&[("NEW", "1"), ("SHARED", "changed")]));
    assert_eq!(updated.size, Size::L);
    assert_eq!(updated.timeout_seconds, 120);
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(store.get_app("web").await.unwrap(), updated);

    // An empty update changes nothing but the update time.
    let same = store
        .update_app("web", &AppUpdate::default())
        .await
        .unwrap();
    assert_eq!(same.env, updated.env);
    assert_eq!(same.image, updated.image);

    // Concurrent updates of different vars all land.
    let updates: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .update_app(
                        "web",
                        &AppUpdate {
                            env: env(&[(&format!("K{i}"), &i.to_string())]),
                            ..AppUpdate::default()
                        },
                    )
                    .await
            })
        })
        .collect();
    for update in updates {
        update.await.unwrap().expect("concurrent update_app");
    }
    let merged = store.get_app("web").await.unwrap().env;
    for i in 0..8 {
        assert_eq!(
            merged.get(&format!("K{i}")),
            Some(&i.to_string()),
            "K{i} lost"
        );
    }
    assert_eq!(merged.get("NEW").map(String::as_str), Some("1"));

    match store.update_app("nope", &AppUpdate::default()).await {
        Err(StoreError::AppNotFound(name)) => assert_eq!(name, "nope"),
        other => panic!("expected AppNotFound, got {other:?}"),
    }
}

async fn apps_hardening_round_trips_and_reaches_the_claim(store: Store) {
    let plain = create_app(&store, "plain").await;
    assert_eq!(plain.hardening, Hardening::default(), "off by default");

    let hardening = Hardening {
        cap_add: vec!["CHOWN".to_owned(), "NET_BIND_SERVICE".to_owned()],
        user: Some("65534:65534".to_owned()),
        read_only_root: true,
        network_none: true,
        network: None,
    };
    let created = store
        .create_app(&AppCreate {
            name: "locked".to_owned(),
            image: "busybox".to_owned(),
            hardening: hardening.clone(),
            ..AppCreate::default()
        })
        .await
        .unwrap();
    assert_eq!(created.hardening, hardening);
    assert_eq!(store.get_app("locked").await.unwrap(), created);
    let listed = store.list_apps().await.unwrap();
    assert_eq!(listed.iter().find(|a| a.name == "locked"), Some(&created));

    // Absent fields stay; a given field changes alone.
    let updated = store
        .update_app(
            "locked",
            &AppUpdate {
                read_only_root: Some(false),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        updated.hardening,
        Hardening {
            read_only_root: false,
            ..hardening.clone()
        }
    );

    // `cap_add` replaces the list; a null user goes back to the image's.
    let updated = store
        .update_app(
            "locked",
            &AppUpdate {
                cap_add: Some(vec!["SETUID".to_owned()]),
                user: Some(None),
                network_none: Some(false),
                network: Some(Some("billing-db".to_owned())),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    let expected = Hardening {
        cap_add: vec!["SETUID".to_owned()],
        user: None,
        read_only_root: false,
        network_none: false,
        network: Some("billing-db".to_owned()),
    };
    assert_eq!(updated.hardening, expected);
    assert_eq!(store.get_app("locked").await.unwrap(), updated);

    // The worker gets the app's options with the claim.
    let reset = store
        .update_app(
            "locked",
            &AppUpdate {
                cap_add: Some(hardening.cap_add.clone()),
                user: Some(hardening.user.clone()),
                read_only_root: Some(true),
                network_none: Some(true),
                network: Some(None),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(reset.hardening, hardening);
    let queued = create_job(&store, "locked").await;
    let claimed = claim(&store, &queued.id, "worker-1", LEASE).await;
    assert_eq!(claimed.hardening, hardening);
    let plain_job = create_job(&store, "plain").await;
    let claimed = claim(&store, &plain_job.id, "worker-1", LEASE).await;
    assert_eq!(claimed.hardening, Hardening::default());
}

async fn apps_secret_env_round_trips_and_reaches_the_claim(store: Store) {
    let created = store
        .create_app(&AppCreate {
            name: "vault".to_owned(),
            image: "alpine".to_owned(),
            env: env(&[("PLAIN", "visible"), ("DB_PASSWORD", "hunter2-secret")]),
            // A name without a value is not kept: a mark needs a var.
            secret_env: vec!["DB_PASSWORD".to_owned(), "NOT_SET".to_owned()],
            ..AppCreate::default()
        })
        .await
        .unwrap();
    assert_eq!(created.secret_env, vec!["DB_PASSWORD".to_owned()]);
    // The store keeps the real value; only the API masks it.
    assert_eq!(created.env["DB_PASSWORD"], "hunter2-secret");
    assert_eq!(store.get_app("vault").await.unwrap(), created);
    let listed = store.list_apps().await.unwrap();
    assert_eq!(listed.iter().find(|a| a.name == "vault"), Some(&created));

    // Marking an existing var keeps its value; other updates keep the marks.
    let updated = store
        .update_app(
            "vault",
            &AppUpdate {
                secret_env: vec!["PLAIN".to_owned()],
                env: env(&[("OTHER", "x")]),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        updated.secret_env,
        vec!["DB_PASSWORD".to_owned(), "PLAIN".to_owned()]
    );
    assert_eq!(updated.env["PLAIN"], "visible");

    // The claim has the real merged env and the app's secret values, even
    // for a var a job's override replaced.
    let (job, _) = store
        .create_job(
            "vault",
            &JobCreate {
                command: vec!["true".to_owned()],
                env: env(&[("PLAIN", "override")]),
                ..JobCreate::default()
            },
        )
        .await
        .unwrap();
    let claimed = claim(&store, &job.id, "w1", LEASE).await;
    assert_eq!(claimed.env["DB_PASSWORD"], "hunter2-secret");
    assert_eq!(claimed.env["PLAIN"], "override");
    let mut values = claimed.secret_values.clone();
    values.sort();
    assert_eq!(
        values,
        vec!["hunter2-secret".to_owned(), "visible".to_owned()]
    );
    let debug = format!("{claimed:?} {:?}", store.get_app("vault").await.unwrap());
    assert!(!debug.contains("hunter2"), "{debug}");

    // A worker taking the job over after a restart gets them too.
    let held = store.jobs_held_by("w1").await.unwrap();
    assert_eq!(held.len(), 1);
    let mut values = held[0].secret_values.clone();
    values.sort();
    assert_eq!(
        values,
        vec!["hunter2-secret".to_owned(), "visible".to_owned()]
    );
}

async fn apps_unset_and_unsecret_remove_the_secret_mark(store: Store) {
    store
        .create_app(&AppCreate {
            name: "vault".to_owned(),
            image: "alpine".to_owned(),
            env: env(&[("A_KEY", "aaaa-secret"), ("B_KEY", "bbbb-secret")]),
            secret_env: vec!["A_KEY".to_owned(), "B_KEY".to_owned()],
            ..AppCreate::default()
        })
        .await
        .unwrap();
    let updated = store
        .update_app(
            "vault",
            &AppUpdate {
                unset: vec!["A_KEY".to_owned()],
                unsecret: vec!["B_KEY".to_owned()],
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    assert!(updated.secret_env.is_empty());
    assert_eq!(updated.env, env(&[("B_KEY", "bbbb-secret")]));
    // Setting the unset var again does not bring its old mark back.
    let again = store
        .update_app(
            "vault",
            &AppUpdate {
                env: env(&[("A_KEY", "plain-now")]),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    assert!(again.secret_env.is_empty());
    assert_eq!(store.get_app("vault").await.unwrap(), again);
}

async fn apps_warm_round_trips(store: Store) {
    let created = store
        .create_app(&AppCreate {
            name: "warm".to_owned(),
            image: "alpine".to_owned(),
            warm: Some(2),
            ..AppCreate::default()
        })
        .await
        .unwrap();
    assert_eq!(created.warm, 2);
    assert_eq!(store.get_app("warm").await.unwrap(), created);
    let listed = store.list_apps().await.unwrap();
    assert_eq!(listed.iter().find(|a| a.name == "warm"), Some(&created));

    let off = store
        .update_app(
            "warm",
            &AppUpdate {
                warm: Some(0),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(off.warm, 0);
    assert_eq!(store.get_app("warm").await.unwrap().warm, 0);

    // An update without `warm` keeps it.
    store
        .update_app(
            "warm",
            &AppUpdate {
                warm: Some(3),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    let kept = store
        .update_app(
            "warm",
            &AppUpdate {
                image: Some("busybox".to_owned()),
                timeout_seconds: Some(60),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(kept.image, "busybox");
    assert_eq!(kept.warm, 3);
    assert_eq!(store.get_app("warm").await.unwrap().warm, 3);
}

async fn jobs_create_within_refuses_over_the_queued_limit(store: Store) {
    create_app(&store, "busy").await;
    let first = store
        .create_job_within("busy", &job_create(), Some(2), None, None)
        .await
        .unwrap()
        .0;
    let second = store
        .create_job_within("busy", &job_create(), Some(2), None, None)
        .await
        .unwrap()
        .0;
    let refused = store
        .create_job_within("busy", &job_create(), Some(2), None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &refused,
            StoreError::TooManyJobs { app, queued: 2, limit: 2 } if app == "busy"
        ),
        "{refused:?}"
    );
    assert_eq!(
        refused.to_string(),
        "app \"busy\" already has 2 queued jobs: the limit is 2 \
         (JOBS_MAX_QUEUED_JOBS_PER_APP); wait for some to start or cancel some"
    );
    let jobs = store.list_jobs("busy", None, 100).await.unwrap();
    assert_eq!(jobs.len(), 2, "nothing was created");

    // A repeated idempotency key still answers at the limit.
    store.cancel_job(&second.id).await.unwrap();
    let keyed = JobCreate {
        idempotency_key: Some("k1".to_owned()),
        ..job_create()
    };
    let (made, created) = store
        .create_job_within("busy", &keyed, Some(2), None, None)
        .await
        .unwrap();
    assert!(created);
    let (again, created) = store
        .create_job_within("busy", &keyed, Some(2), None, None)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.id, made.id);

    // An ended job frees its place; concurrent creations never pass the limit.
    store.cancel_job(&first.id).await.unwrap();
    let mut tries = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let store = store.clone();
        tries.spawn(async move {
            store
                .create_job_within("busy", &job_create(), Some(2), None, None)
                .await
        });
    }
    let mut made = 0;
    while let Some(attempt) = tries.join_next().await {
        match attempt.unwrap() {
            Ok(_) => made += 1,
            Err(StoreError::TooManyJobs { .. }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(made, 1, "one place was free");
    let active = store
        .list_jobs("busy", Some(JobState::Queued), 100)
        .await
        .unwrap();
    assert_eq!(active.len(), 2);
}

async fn apps_delete_refused_while_a_job_is_active(store: Store) {
    create_app(&store, "web").await;
    let queued = create_job(&store, "web").await;
    match store.delete_app("web").await {
        Err(StoreError::AppBusy { app, active }) => {
            assert_eq!(app, "web");
            assert_eq!(active, 1);
        }
        other => panic!("expected AppBusy, got {other:?}"),
    }
    let claimed = claim(&store, &queued.id, "w1", LEASE).await;
    assert!(matches!(
        store.delete_app("web").await,
        Err(StoreError::AppBusy { active: 1, .. })
    ));
    store.mark_running(&claimed.fence).await.unwrap();
    assert!(matches!(
        store.delete_app("web").await,
        Err(StoreError::AppBusy { active: 1, .. })
    ));
    store
        .append_logs(&queued.id, &[chunk(1, b"x")])
        .await
        .unwrap();
    assert!(
        store
            .finish(&claimed.fence, JobState::Succeeded, Some(0), None)
            .await
            .unwrap()
    );

    // Ended jobs (and their logs) go with the app.
    store.delete_app("web").await.expect("delete_app");
    assert!(matches!(
        store.get_app("web").await,
        Err(StoreError::AppNotFound(_))
    ));
    assert!(matches!(
        store.get_job(&queued.id).await,
        Err(StoreError::JobNotFound(_))
    ));
    assert_eq!(store.last_log_seq(&queued.id).await.unwrap(), 0);
    assert!(matches!(
        store.delete_app("web").await,
        Err(StoreError::AppNotFound(_))
    ));
    // The name is free again.
    create_app(&store, "web").await;
}

// ---------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------

async fn jobs_create_with_app_defaults_and_overrides(store: Store) {
    store
        .create_app(&AppCreate {
            name: "web".to_owned(),
            image: "alpine".to_owned(),
            env: BTreeMap::new(),
            size: Some(Size::S),
            timeout_seconds: Some(90),
            warm: None,
            max_running: None,
            weight: None,
            max_output_bytes: None,
            storage_quota_bytes: None,
            secret_env: vec![],
            hardening: Default::default(),
        })
        .await
        .unwrap();
    let job = create_job(&store, "web").await;
    assert_eq!(job.app, "web");
    assert_eq!(job.command, ["echo", "hello"]);
    assert_eq!(job.env, env(&[("JOB_ONLY", "job"), ("SHARED", "from-job")]));
    assert_eq!(job.size, Size::S);
    assert_eq!(job.timeout_seconds, 90);
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.attempt, 0);
    assert_eq!(job.exit_code, None);
    assert_eq!(job.reason, None);
    assert!(!job.cancel_requested);
    assert_eq!(job.worker_id, None);
    assert_eq!(job.started_at, None);
    assert_eq!(job.finished_at, None);
    assert_eq!(store.get_job(&job.id).await.unwrap(), job);

    let (custom, created) = store
        .create_job(
            "web",
            &JobCreate {
                size: Some(Size::XL),
                timeout_seconds: Some(5),
                ..job_create()
            },
        )
        .await
        .unwrap();
    assert!(created);
    assert_ne!(custom.id, job.id);
    assert_eq!(custom.size, Size::XL);
    assert_eq!(custom.timeout_seconds, 5);

    match store.create_job("nope", &job_create()).await {
        Err(StoreError::AppNotFound(name)) => assert_eq!(name, "nope"),
        other => panic!("expected AppNotFound, got {other:?}"),
    }
    match store.get_job("nope").await {
        Err(StoreError::JobNotFound(id)) => assert_eq!(id, "nope"),
        other => panic!("expected JobNotFound, got {other:?}"),
    }
}

async fn jobs_idempotency_key_returns_the_first_job(store: Store) {
    create_app(&store, "web").await;
    create_app(&store, "api").await;
    let keyed = JobCreate {
        idempotency_key: Some("key-1".to_owned()),
        ..job_create()
    };
    let (first, created) = store.create_job("web", &keyed).await.unwrap();
    assert!(created);
    let (again, created) = store
        .create_job(
            "web",
            &JobCreate {
                command: vec!["something".to_owned(), "else".to_owned()],
                ..keyed.clone()
            },
        )
        .await
        .unwrap();
    assert!(!created, "a repeated key creates nothing");
    assert_eq!(again, first, "a repeated key returns the first job");

    let (other_key, created) = store
        .create_job(
            "web",
            &JobCreate {
                idempotency_key: Some("key-2".to_owned()),
                ..job_create()
            },
        )
        .await
        .unwrap();
    assert!(created);
    assert_ne!(other_key.id, first.id);
    let (other_app, created) = store.create_job("api", &keyed).await.unwrap();
    assert!(created, "keys are per app");
    assert_ne!(other_app.id, first.id);
    // Jobs without a key never collide.
    create_job(&store, "web").await;
    create_job(&store, "web").await;
    assert_eq!(store.list_jobs("web", None, 100).await.unwrap().len(), 4);
}

async fn jobs_expired_idempotency_key_makes_a_new_job(store: Store) {
    create_app(&store, "web").await;
    create_app(&store, "api").await;
    let keyed = JobCreate {
        idempotency_key: Some("nightly".to_owned()),
        ..job_create()
    };
    let (first, _) = store.create_job("web", &keyed).await.unwrap();
    let (elsewhere, _) = store.create_job("api", &keyed).await.unwrap();

    // Young keys stay.
    let day = Duration::from_secs(24 * 3600);
    assert!(
        !store
            .release_expired_idempotency_key("web", "nightly", day)
            .await
            .unwrap()
    );
    let (again, created) = store.create_job("web", &keyed).await.unwrap();
    assert!(!created);
    assert_eq!(again.id, first.id);

    tokio::time::sleep(Duration::from_millis(20)).await;
    let short = Duration::from_millis(5);
    assert!(
        store
            .release_expired_idempotency_key("web", "nightly", short)
            .await
            .unwrap(),
        "an old key is freed"
    );
    assert!(
        !store
            .release_expired_idempotency_key("web", "missing", short)
            .await
            .unwrap()
    );
    let (fresh, created) = store.create_job("web", &keyed).await.unwrap();
    assert!(created, "a freed key makes a new job");
    assert_ne!(fresh.id, first.id);
    // The old job is kept, and the other app's key was not touched.
    assert_eq!(job(&store, &first.id).await.id, first.id);
    let (still, created) = store.create_job("api", &keyed).await.unwrap();
    assert!(!created);
    assert_eq!(still.id, elsewhere.id);
}

async fn jobs_concurrent_idempotency_key_makes_one_row(store: Store) {
    create_app(&store, "web").await;
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_job(
                        "web",
                        &JobCreate {
                            idempotency_key: Some("same".to_owned()),
                            ..job_create()
                        },
                    )
                    .await
            })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut created = 0;
    for request in requests {
        let (job, was_created) = request.await.unwrap().expect("create_job");
        ids.insert(job.id);
        created += usize::from(was_created);
    }
    assert_eq!(ids.len(), 1, "every request got the same job");
    assert_eq!(created, 1, "exactly one request created it");
    assert_eq!(store.list_jobs("web", None, 100).await.unwrap().len(), 1);
}

async fn jobs_list_newest_first_by_state_with_limit(store: Store) {
    create_app(&store, "web").await;
    create_app(&store, "api").await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(create_job(&store, "web").await.id);
    }
    create_job(&store, "api").await;
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

    let listed: Vec<String> = store
        .list_jobs("web", None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, newest_first);
    let limited: Vec<String> = store
        .list_jobs("web", None, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(limited, newest_first[..2]);

    claim(&store, &ids[1], "w1", LEASE).await;
    let starting: Vec<String> = store
        .list_jobs("web", Some(JobState::Starting), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(starting, [ids[1].clone()]);
    let queued: Vec<String> = store
        .list_jobs("web", Some(JobState::Queued), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(
        queued,
        [ids[3].clone(), ids[2].clone(), ids[0].clone()],
        "queued jobs, newest first"
    );
    assert!(
        store
            .list_jobs("web", Some(JobState::Failed), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_jobs("nope", None, 100).await.unwrap().is_empty());
}

async fn jobs_are_counted_by_state(store: Store) {
    assert!(store.jobs_by_state().await.unwrap().is_empty());
    create_app(&store, "web").await;
    create_app(&store, "api").await;
    let first = create_job(&store, "web").await.id;
    create_job(&store, "web").await;
    create_job(&store, "api").await;
    let running = claim(&store, &first, "w1", LEASE).await;
    assert!(store.mark_running(&running.fence).await.unwrap());
    let mut counts = store.jobs_by_state().await.unwrap();
    counts.sort_by_key(|(state, _)| state.as_str());
    assert_eq!(counts, [(JobState::Queued, 2), (JobState::Running, 1)]);
}

// ---------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------

async fn claim_starts_a_queued_job_once(store: Store) {
    create_app(&store, "web").await;
    let queued = create_job(&store, "web").await;
    let claimed = claim(&store, &queued.id, "worker-1", LEASE).await;
    assert_eq!(
        claimed.fence,
        Fence {
            job_id: queued.id.clone(),
            attempt: 1,
            worker_id: "worker-1".to_owned(),
        }
    );
    assert_eq!(claimed.image, "alpine:3.20");
    assert_eq!(
        claimed.env,
        env(&[
            ("APP_ONLY", "app"),
            ("JOB_ONLY", "job"),
            ("SHARED", "from-job"),
        ]),
        "the app's env merged with the job's, the job's winning"
    );
    assert_eq!(claimed.size, Size::M);
    assert_eq!(claimed.timeout, Duration::from_secs(3600));
    assert_eq!(claimed.job.state, JobState::Starting);
    assert_eq!(claimed.job.attempt, 1);
    assert_eq!(claimed.job.worker_id.as_deref(), Some("worker-1"));
    assert_eq!(
        claimed.job.env, queued.env,
        "the job keeps its own overrides"
    );

    let stored = job(&store, &queued.id).await;
    assert_eq!(stored.state, JobState::Starting);
    assert_eq!(stored.attempt, 1);
    assert_eq!(stored.worker_id.as_deref(), Some("worker-1"));
    assert_eq!(stored.started_at, None);

    assert!(
        store
            .claim(&queued.id, "worker-2", LEASE)
            .await
            .unwrap()
            .is_none(),
        "a second claim of the same job finds it taken"
    );
    assert!(
        store
            .claim(&queued.id, "worker-1", LEASE)
            .await
            .unwrap()
            .is_none(),
        "even by the same worker"
    );
    assert!(
        store
            .claim("nope", "worker-1", LEASE)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(job(&store, &queued.id).await.attempt, 1);
}

async fn claim_concurrent_claims_one_winner(store: Store) {
    create_app(&store, "web").await;
    let queued = create_job(&store, "web").await;
    let claims: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            let id = queued.id.clone();
            tokio::spawn(async move { store.claim(&id, &format!("w{i}"), LEASE).await })
        })
        .collect();
    let mut winners = Vec::new();
    for claim in claims {
        if let Some(claimed) = claim.await.unwrap().expect("claim") {
            winners.push(claimed.fence);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
    let stored = job(&store, &queued.id).await;
    assert_eq!(stored.attempt, 1);
    assert_eq!(
        stored.worker_id.as_deref(),
        Some(winners[0].worker_id.as_str())
    );
}

async fn mark_running_and_heartbeat(store: Store) {
    create_app(&store, "web").await;
    let queued = create_job(&store, "web").await;
    let claimed = claim(&store, &queued.id, "w1", LEASE).await;
    assert_eq!(
        store.heartbeat(&claimed.fence, LEASE).await.unwrap(),
        Heartbeat::Renewed {
            cancel_requested: false
        },
        "a starting job heartbeats too"
    );
    assert!(store.mark_running(&claimed.fence).await.unwrap());
    let running = job(&store, &queued.id).await;
    assert_eq!(running.state, JobState::Running);
    assert!(running.started_at.is_some());
    assert!(running.started_at.unwrap() >= running.created_at);
    assert!(
        !store.mark_running(&claimed.fence).await.unwrap(),
        "running is reached once"
    );
    assert_eq!(
        store.heartbeat(&claimed.fence, LEASE).await.unwrap(),
        Heartbeat::Renewed {
            cancel_requested: false
        }
    );
    // A heartbeat renews the lease: a tiny lease renewed to a long one is
    // not reaped.
    assert_eq!(
        store.heartbeat(&claimed.fence, TINY_LEASE).await.unwrap(),
        Heartbeat::Renewed {
            cancel_requested: false
        }
    );
    assert_eq!(
        store.heartbeat(&claimed.fence, LEASE).await.unwrap(),
        Heartbeat::Renewed {
            cancel_requested: false
        }
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = store.reap_expired_leases().await.unwrap();
    assert!(
        report.lost.is_empty() && report.requeued.is_empty(),
        "{report:?}"
    );
    assert_eq!(job(&store, &queued.id).await.state, JobState::Running);
}

async fn stale_fences_change_nothing(store: Store) {
    create_app(&store, "web").await;
    let queued = create_job(&store, "web").await;
    let claimed = claim(&store, &queued.id, "w1", LEASE).await;
    let wrong_attempt = Fence {
        attempt: claimed.fence.attempt + 1,
        ..claimed.fence.clone()
    };
    let wrong_worker = Fence {
        worker_id: "w2".to_owned(),
        ..claimed.fence.clone()
    };
    let wrong_job = Fence {
        job_id: "nope".to_owned(),
        ..claimed.fence.clone()
    };
    for stale in [&wrong_attempt, &wrong_worker, &wrong_job] {
        assert!(!store.mark_running(stale).await.unwrap(), "{stale:?}");
        assert_eq!(
            store.heartbeat(stale, LEASE).await.unwrap(),
            Heartbeat::Lost,
            "{stale:?}"
        );
        assert!(
            !store
                .finish(stale, JobState::Failed, Some(1), Some("stale"))
                .await
                .unwrap(),
            "{stale:?}"
        );
        assert!(!store.requeue_unstarted(stale).await.unwrap(), "{stale:?}");
    }
    let unchanged = job(&store, &queued.id).await;
    assert_eq!(unchanged.state, JobState::Starting);
    assert_eq!(unchanged.exit_code, None);
    assert_eq!(unchanged.reason, None);
    assert_eq!(unchanged.worker_id.as_deref(), Some("w1"));

    assert!(store.mark_running(&claimed.fence).await.unwrap());
    for stale in [&wrong_attempt, &wrong_worker] {
        assert_eq!(
            store.heartbeat(stale, LEASE).await.unwrap(),
            Heartbeat::Lost
        );
        assert!(
            !store
                .finish(stale, JobState::Failed, Some(1), None)
                .await
                .unwrap()
        );
    }
    assert_eq!(job(&store, &queued.id).await.state, JobState::Running);

    // An earlier attempt's fence is stale once the job was claimed again.
    let second = create_job(&store, "web").await;
    let first_attempt = claim(&store, &second.id, "w1", LEASE).await.fence;
    assert!(store.requeue_unstarted(&first_attempt).await.unwrap());
    let second_attempt = claim(&store, &second.id, "w1", LEASE).await.fence;
    assert_eq!(second_attempt.attempt, 2);
    assert!(!store.mark_running(&first_attempt).await.unwrap());
    assert_eq!(
        store.heartbeat(&first_attempt, LEASE).await.unwrap(),
        Heartbeat::Lost
    );
    assert!(
        !store
            .finish(&first_attempt, JobState::Failed, Some(1), None)
            .await
            .unwrap()
    );
    assert!(store.mark_running(&second_attempt).await.unwrap());
}

async fn finish_writes_once(store: Store) {
    create_app(&store, "web").await;
    let queued = create_job(&store, "web").await;
    let claimed = claim(&store, &queued.id, "w1", LEASE).await;
    assert!(store.mark_running(&claimed.fence).await.unwrap());
    assert!(
        store
            .finish(&claimed.fence, JobState::Failed, Some(3), Some("exited 3"))
            .await
            .unwrap()
    );
    let ended = job(&store, &queued.id).await;
    assert_eq!(ended.state, JobState::Failed);
    assert_eq!(ended.exit_code, Some(3));
    assert_eq!(ended.reason.as_deref(), Some("exited 3"));
    assert!(ended.finished_at.is_some());
    assert!(ended.finished_at >= ended.started_at);

    assert!(
        !store
            .finish(&claimed.fence, JobState::Succeeded, Some(0), None)
            .await
            .unwrap(),
        "a second finish is refused"
    );
    assert_eq!(job(&store, &queued.id).await, ended, "and writes nothing");
    assert_eq!(
        store.heartbeat(&claimed.fence, LEASE).await.unwrap(),
        Heartbeat::Lost
    );
    assert!(!store.mark_running(&claimed.fence).await.unwrap());

    // A job may end from `starting` (the container never started).
    let other = create_job(&store, "web").await;
    let fence = claim(&store, &other.id, "w1", LEASE).await.fence;
    assert!(
        store
            .finish(&fence, JobState::Failed, None, Some("image not found"))
            .await
            .unwrap()
    );
    let failed = job(&store, &other.id).await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.exit_code, None);
    assert_eq!(failed.started_at, None);
}

async fn cancel_queued_job(store: Store) {
    create_app(&store, "web").await;
    let queued = create_job(&store, "web").await;
    let canceled = match store.cancel_job(&queued.id).await.unwrap() {
        CancelOutcome::CanceledWhileQueued(job) => job,
        other => panic!("expected CanceledWhileQueued, got {other:?}"),
    };
    assert_eq!(canceled.state, JobState::Canceled);
    assert_eq!(canceled.reason.as_deref(), Some("canceled while queued"));
    assert!(canceled.cancel_requested);
    assert!(canceled.finished_at.is_some());
    assert_eq!(job(&store, &queued.id).await, canceled);
    assert!(
        store
            .claim(&queued.id, "w1", LEASE)
            .await
            .unwrap()
            .is_none(),
        "a canceled job is never claimed"
    );
    match store.cancel_job(&queued.id).await.unwrap() {
        CancelOutcome::AlreadyEnded(job) => assert_eq!(job, canceled),
        other => panic!("expected AlreadyEnded, got {other:?}"),
    }
    assert!(matches!(
        store.cancel_job("nope").await,
        Err(StoreError::JobNotFound(_))
    ));
}

async fn cancel_running_job(store: Store) {
    create_app(&store, "web").await;
    let queued = create_job(&store, "web").await;
    let claimed = claim(&store, &queued.id, "w1", LEASE).await;

    // Asked while starting: the worker may not hand it back to the queue.
    match store.cancel_job(&queued.id).await.unwrap() {
        CancelOutcome::StopRequested(job) => {
            assert_eq!(job.state, JobState::Starting);
            assert!(job.cancel_requested);
        }
        other => panic!("expected StopRequested, got {other:?}"),
    }
    assert!(!store.requeue_unstarted(&claimed.fence).await.unwrap());
    assert!(store.mark_running(&claimed.fence).await.unwrap());
    assert_eq!(
        store.heartbeat(&claimed.fence, LEASE).await.unwrap(),
        Heartbeat::Renewed {
            cancel_requested: true
        }
    );
    // Asking again changes nothing.
    match store.cancel_job(&queued.id).await.unwrap() {
        CancelOutcome::StopRequested(job) => {
            assert_eq!(job.state, JobState::Running);
            assert!(job.cancel_requested);
        }
        other => panic!("expected StopRequested, got {other:?}"),
    }
    assert!(
        store
            .finish(
                &claimed.fence,
                JobState::Canceled,
                Some(137),
                Some("canceled")
            )
            .await
            .unwrap()
    );
    let ended = job(&store, &queued.id).await;
    assert_eq!(ended.state, JobState::Canceled);
    assert_eq!(ended.exit_code, Some(137));
    assert!(matches!(
        store.cancel_job(&queued.id).await.unwrap(),
        CancelOutcome::AlreadyEnded(_)
    ));
}

async fn requeue_unstarted_job(store: Store) {
    create_app(&store, "web").await;
    let queued = create_job(&store, "web").await;
    store
        .mark_published(std::slice::from_ref(&queued.id))
        .await
        .unwrap();
    let first = claim(&store, &queued.id, "w1", LEASE).await;
    assert_eq!(first.last_log_seq, 0, "no output yet");
    // Output stored meanwhile (the store does not forbid it) numbers the
    // next attempt's on.
    store
        .append_logs(&queued.id, &[chunk(1, b"a"), chunk(2, b"b")])
        .await
        .unwrap();
    let first = first.fence;
    assert!(store.requeue_unstarted(&first).await.unwrap());
    let requeued = job(&store, &queued.id).await;
    assert_eq!(requeued.state, JobState::Queued);
    assert_eq!(requeued.worker_id, None);
    assert_eq!(requeued.attempt, 1, "the attempt is spent");
    eventually("the re-queued job is unpublished", || async {
        let ids = store.unpublished_jobs(Duration::ZERO, 100).await.unwrap();
        ids.contains(&queued.id).then_some(())
    })
    .await;
    assert!(!store.requeue_unstarted(&first).await.unwrap(), "once only");

    let second = claim(&store, &queued.id, "w2", LEASE).await;
    assert_eq!(second.last_log_seq, 2, "the claim reads the last chunk");
    let second = second.fence;
    assert_eq!(second.attempt, 2);
    assert!(store.mark_running(&second).await.unwrap());
    assert!(
        !store.requeue_unstarted(&second).await.unwrap(),
        "a running job is never re-queued"
    );
    assert_eq!(job(&store, &queued.id).await.state, JobState::Running);
}

async fn jobs_held_by_worker(store: Store) {
    store
        .create_app(&AppCreate {
            name: "web".to_owned(),
            image: "alpine".to_owned(),
            env: BTreeMap::new(),
            size: None,
            timeout_seconds: Some(600),
            warm: None,
            max_running: None,
            weight: None,
            max_output_bytes: None,
            storage_quota_bytes: None,
            secret_env: vec![],
            hardening: Default::default(),
        })
        .await
        .unwrap();
    let a = create_job(&store, "web").await;
    let b = create_job(&store, "web").await;
    let c = create_job(&store, "web").await;
    let d = create_job(&store, "web").await;
    let fence_a = claim(&store, &a.id, "w1", LEASE).await.fence;
    let fence_b = claim(&store, &b.id, "w1", LEASE).await.fence;
    claim(&store, &c.id, "w2", LEASE).await;
    let fence_d = claim(&store, &d.id, "w1", LEASE).await.fence;
    assert!(store.mark_running(&fence_b).await.unwrap());
    assert!(store.mark_running(&fence_d).await.unwrap());
    assert!(
        store
            .finish(&fence_d, JobState::Succeeded, Some(0), None)
            .await
            .unwrap()
    );

    let mut held = store.jobs_held_by("w1").await.unwrap();
    held.sort_by(|x, y| x.fence.job_id.cmp(&y.fence.job_id));
    let mut expected = vec![(fence_a.clone(), false), (fence_b.clone(), true)];
    expected.sort_by(|x, y| x.0.job_id.cmp(&y.0.job_id));
    assert_eq!(
        held.iter()
            .map(|h| (h.fence.clone(), h.running))
            .collect::<Vec<_>>(),
        expected
    );
    for h in &held {
        let full = Duration::from_secs(600);
        assert!(h.timeout_left <= full, "{h:?}");
        assert!(h.timeout_left > full - Duration::from_secs(60), "{h:?}");
        if !h.running {
            assert_eq!(h.timeout_left, full, "a job that never ran has all of it");
        }
    }
    assert_eq!(store.jobs_held_by("w2").await.unwrap().len(), 1);
    assert!(store.jobs_held_by("w3").await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------

async fn logs_append_ignores_replays(store: Store) {
    create_app(&store, "web").await;
    let queued = create_job(&store, "web").await;
    assert_eq!(store.last_log_seq(&queued.id).await.unwrap(), 0);
    assert!(
        store
            .logs_after(&queued.id, 0, 100, 1 << 20)
            .await
            .unwrap()
            .is_empty()
    );
    store.append_logs(&queued.id, &[]).await.unwrap();

    let time = Utc::now();
    let first = vec![
        NewChunk {
            seq: 1,
            stream: LogStream::Stdout,
            time,
            data: b"one\n".to_vec(),
            raw_end: None,
        },
        NewChunk {
            seq: 2,
            stream: LogStream::Stderr,
            time,
            data: b"two\n".to_vec(),
            raw_end: None,
        },
    ];
    store.append_logs(&queued.id, &first).await.unwrap();
    // A retried batch that overlaps: the stored chunks stay as they were.
    let replay = vec![
        NewChunk {
            data: b"CHANGED".to_vec(),
            ..first[1].clone()
        },
        NewChunk {
            seq: 3,
            stream: LogStream::Stdout,
            time,
            data: b"three\n".to_vec(),
            raw_end: None,
        },
    ];
    store.append_logs(&queued.id, &replay).await.unwrap();
    store.append_logs(&queued.id, &replay).await.unwrap();
    assert_eq!(store.last_log_seq(&queued.id).await.unwrap(), 3);

    let chunks = store.logs_after(&queued.id, 0, 100, 1 << 20).await.unwrap();
    let got: Vec<(i64, LogStream, Vec<u8>)> = chunks
        .iter()
        .map(|c| (c.seq, c.stream, c.bytes().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (1, LogStream::Stdout, b"one\n".to_vec()),
            (2, LogStream::Stderr, b"two\n".to_vec()),
            (3, LogStream::Stdout, b"three\n".to_vec()),
        ]
    );
    for c in &chunks {
        assert_eq!(c.time, time.trunc_subsecs(6), "times keep microseconds");
    }

    // Logs of one job are not another's.
    let other = create_job(&store, "web").await;
    assert_eq!(store.last_log_seq(&other.id).await.unwrap(), 0);
    store
        .append_logs(&other.id, &[chunk(7, b"x")])
        .await
        .unwrap();
    assert_eq!(store.last_log_seq(&other.id).await.unwrap(), 7);
    assert_eq!(store.last_log_seq(&queued.id).await.unwrap(), 3);
}

async fn log_raw_offsets_are_each_streams_last_resume_point(store: Store) {
    create_app(&store, "web").await;
    let queued = create_job(&store, "web").await;
    assert_eq!(
        store.log_raw_offsets(&queued.id).await.unwrap(),
        RawOffsets::default()
    );
    let at = |seq, stream, raw_end| NewChunk {
        stream,
        raw_end,
        ..chunk(seq, b"x")
    };
    store
        .append_logs(
            &queued.id,
            &[
                at(1, LogStream::Stdout, Some(10)),
                at(2, LogStream::Stderr, Some(4)),
                at(3, LogStream::Stdout, Some(20)),
                // Not a resume point: the one before it counts.
                at(4, LogStream::Stdout, None),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store.log_raw_offsets(&queued.id).await.unwrap(),
        RawOffsets {
            stdout: 20,
            stderr: 4
        }
    );
    // Another job's chunks do not count.
    let other = create_job(&store, "web").await;
    store
        .append_logs(&other.id, &[at(1, LogStream::Stderr, Some(99))])
        .await
        .unwrap();
    assert_eq!(store.log_raw_offsets(&queued.id).await.unwrap().stderr, 4);
}

async fn logs_after_pages(store: Store) {
    create_app(&store, "web").await;
    let queued = create_job(&store, "web").await;
    // Ten chunks of ten bytes each.
    let chunks: Vec<NewChunk> = (1..=10)
        .map(|seq| chunk(seq, format!("chunk {seq:02}\n").as_bytes()))
        .collect();
    assert!(chunks.iter().all(|c| c.data.len() == 9));
    store.append_logs(&queued.id, &chunks[..6]).await.unwrap();
    store.append_logs(&queued.id, &chunks[6..]).await.unwrap();

    let seqs = |page: Vec<jobs_core::wire::LogChunk>| -> Vec<i64> {
        page.into_iter().map(|c| c.seq).collect()
    };
    let all = store.logs_after(&queued.id, 0, 100, 1 << 20).await.unwrap();
    assert_eq!(seqs(all), (1..=10).collect::<Vec<_>>());
    assert_eq!(
        seqs(store.logs_after(&queued.id, 4, 100, 1 << 20).await.unwrap()),
        [5, 6, 7, 8, 9, 10],
        "after is exclusive"
    );
    assert_eq!(
        seqs(store.logs_after(&queued.id, 4, 3, 1 << 20).await.unwrap()),
        [5, 6, 7],
        "at most max_chunks"
    );
    // Chunks are taken while the bytes before them stay under max_bytes:
    // 0, 9, 18 < 20, then 27 is not.
    assert_eq!(
        seqs(store.logs_after(&queued.id, 0, 100, 20).await.unwrap()),
        [1, 2, 3],
        "about max_bytes"
    );
    assert_eq!(
        seqs(store.logs_after(&queued.id, 0, 100, 18).await.unwrap()),
        [1, 2]
    );
    assert_eq!(
        seqs(store.logs_after(&queued.id, 2, 100, 1).await.unwrap()),
        [3],
        "at least one chunk, however small max_bytes"
    );
    assert_eq!(
        seqs(store.logs_after(&queued.id, 0, 2, 20).await.unwrap()),
        [1, 2],
        "the smaller limit wins"
    );
    assert!(
        store
            .logs_after(&queued.id, 10, 100, 1 << 20)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .logs_after("nope", 0, 100, 1 << 20)
            .await
            .unwrap()
            .is_empty()
    );

    // A reader that pages with `after` gets every chunk exactly once.
    let mut after = 0;
    let mut read = Vec::new();
    loop {
        let page = store
            .logs_after(&queued.id, after, 3, 1 << 20)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        read.extend(seqs(page));
    }
    assert_eq!(read, (1..=10).collect::<Vec<_>>());

    // A chunk bigger than max_bytes still comes alone.
    let big = create_job(&store, "web").await;
    store
        .append_logs(&big.id, &[chunk(1, &vec![b'a'; 70_000]), chunk(2, b"b")])
        .await
        .unwrap();
    let page = store.logs_after(&big.id, 0, 100, 65_536).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].bytes().unwrap().len(), 70_000);
}

async fn logs_binary_round_trip(store: Store) {
    create_app(&store, "web").await;
    let queued = create_job(&store, "web").await;
    let binary: Vec<u8> = vec![0x00, 0xff, 0x00, 0x80, b'\n', 0xfe, 0x00];
    let every_byte: Vec<u8> = (0..=255u8).collect();
    store
        .append_logs(
            &queued.id,
            &[chunk(1, &binary), chunk(2, &every_byte), chunk(3, b"")],
        )
        .await
        .unwrap();
    let page = store.logs_after(&queued.id, 0, 100, 1 << 20).await.unwrap();
    assert_eq!(page.len(), 3);
    assert_eq!(page[0].bytes().unwrap(), binary);
    assert_eq!(page[1].bytes().unwrap(), every_byte);
    assert_eq!(page[2].bytes().unwrap(), b"");
}

// ---------------------------------------------------------------------------
// Reaper and outbox
// ---------------------------------------------------------------------------

/// Reaps until every job of `ids` was reported, for at most [`WAIT`]; the
/// union of the reports.
async fn reap_until(store: &Store, ids: &[&str]) -> jobs_store::ReapReport {
    let mut total = jobs_store::ReapReport::default();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let report = store.reap_expired_leases().await.unwrap();
        total.requeued.extend(report.requeued);
        total.lost.extend(report.lost);
        total.expired.extend(report.expired);
        let seen = |id: &&str| {
            total.requeued.iter().any(|r| r == id)
                || total.lost.iter().any(|l| l == id)
                || total.expired.iter().any(|e| e == id)
        };
        if ids.iter().all(seen) {
            return total;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "leases of {ids:?} not reaped within {WAIT:?}: {total:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn reap_requeues_unstarted_and_loses_running(store: Store) {
    create_app(&store, "web").await;
    let starting = create_job(&store, "web").await;
    let running = create_job(&store, "web").await;
    let healthy = create_job(&store, "web").await;
    store
        .mark_published(std::slice::from_ref(&starting.id))
        .await
        .unwrap();
    let starting_fence = claim(&store, &starting.id, "w1", TINY_LEASE).await.fence;
    let running_fence = claim(&store, &running.id, "w1", TINY_LEASE).await.fence;
    assert!(store.mark_running(&running_fence).await.unwrap());
    let healthy_fence = claim(&store, &healthy.id, "w2", LEASE).await.fence;
    assert!(store.mark_running(&healthy_fence).await.unwrap());

    let report = reap_until(&store, &[&starting.id, &running.id]).await;
    assert_eq!(report.requeued, vec![starting.id.clone()]);
    assert_eq!(report.lost, vec![running.id.clone()]);

    let requeued = job(&store, &starting.id).await;
    assert_eq!(requeued.state, JobState::Queued);
    assert_eq!(requeued.worker_id, None);
    assert_eq!(requeued.attempt, 1);
    assert_eq!(requeued.finished_at, None);
    eventually("the re-queued job awaits a new wake-up", || async {
        let ids = store.unpublished_jobs(Duration::ZERO, 100).await.unwrap();
        ids.contains(&starting.id).then_some(())
    })
    .await;

    let lost = job(&store, &running.id).await;
    assert_eq!(lost.state, JobState::Lost);
    assert_eq!(lost.reason.as_deref(), Some("worker lost"));
    assert!(lost.finished_at.is_some());

    assert_eq!(job(&store, &healthy.id).await.state, JobState::Running);

    // The old workers' fences no longer hold.
    assert_eq!(
        store.heartbeat(&running_fence, LEASE).await.unwrap(),
        Heartbeat::Lost
    );
    assert!(
        !store
            .finish(&running_fence, JobState::Succeeded, Some(0), None)
            .await
            .unwrap()
    );
    assert!(!store.mark_running(&starting_fence).await.unwrap());
    assert_eq!(job(&store, &running.id).await, lost);

    // A pass with nothing expired does nothing.
    let report = store.reap_expired_leases().await.unwrap();
    assert!(
        report.requeued.is_empty() && report.lost.is_empty(),
        "{report:?}"
    );
}

async fn reap_out_of_attempts_and_canceled(store: Store) {
    create_app(&store, "web").await;
    let flaky = create_job(&store, "web").await;
    // Three attempts die before the container starts: the first two go back
    // to the queue, the last is lost.
    for attempt in 1..=3 {
        let fence = claim(&store, &flaky.id, "w1", TINY_LEASE).await.fence;
        assert_eq!(fence.attempt, attempt);
        let report = reap_until(&store, &[&flaky.id]).await;
        if attempt < 3 {
            assert_eq!(report.requeued, vec![flaky.id.clone()], "attempt {attempt}");
        } else {
            assert_eq!(report.lost, vec![flaky.id.clone()], "attempt {attempt}");
        }
    }
    let lost = job(&store, &flaky.id).await;
    assert_eq!(lost.state, JobState::Lost);
    assert_eq!(lost.attempt, 3);
    assert_eq!(lost.reason.as_deref(), Some("worker lost"));
    assert!(store.claim(&flaky.id, "w1", LEASE).await.unwrap().is_none());

    // A cancel was asked of a starting job whose worker then died: it is
    // canceled, not re-queued.
    let canceled = create_job(&store, "web").await;
    claim(&store, &canceled.id, "w1", TINY_LEASE).await;
    assert!(matches!(
        store.cancel_job(&canceled.id).await.unwrap(),
        CancelOutcome::StopRequested(_)
    ));
    let report = reap_until(&store, &[&canceled.id]).await;
    assert_eq!(report.lost, vec![canceled.id.clone()]);
    let ended = job(&store, &canceled.id).await;
    assert_eq!(ended.state, JobState::Canceled);
    assert_eq!(ended.reason.as_deref(), Some("worker lost"));

    // The same for a running one.
    let running = create_job(&store, "web").await;
    let fence = claim(&store, &running.id, "w1", TINY_LEASE).await.fence;
    assert!(store.mark_running(&fence).await.unwrap());
    store.cancel_job(&running.id).await.unwrap();
    reap_until(&store, &[&running.id]).await;
    assert_eq!(job(&store, &running.id).await.state, JobState::Canceled);
}

async fn outbox_unpublished_mark_and_forget(store: Store) {
    create_app(&store, "web").await;
    let a = create_job(&store, "web").await;
    let b = create_job(&store, "web").await;
    let c = create_job(&store, "web").await;
    let all = eventually("new jobs are unpublished", || async {
        let ids = store.unpublished_jobs(Duration::ZERO, 100).await.unwrap();
        (ids.len() == 3).then_some(ids)
    })
    .await;
    assert_eq!(
        all,
        [a.id.clone(), b.id.clone(), c.id.clone()],
        "oldest first"
    );
    assert_eq!(
        store.unpublished_jobs(Duration::ZERO, 2).await.unwrap(),
        [a.id.clone(), b.id.clone()]
    );
    assert!(
        store
            .unpublished_jobs(Duration::from_secs(3600), 100)
            .await
            .unwrap()
            .is_empty(),
        "younger than older_than"
    );

    store
        .mark_published(std::slice::from_ref(&a.id))
        .await
        .unwrap();
    store
        .mark_published(std::slice::from_ref(&a.id))
        .await
        .unwrap();
    store.mark_published(&["nope".into()]).await.unwrap();
    assert_eq!(
        store.unpublished_jobs(Duration::ZERO, 100).await.unwrap(),
        [b.id.clone(), c.id.clone()]
    );

    // Only queued jobs are relayed.
    claim(&store, &c.id, "w1", LEASE).await;
    assert_eq!(
        store.unpublished_jobs(Duration::ZERO, 100).await.unwrap(),
        vec![b.id.clone()]
    );

    // Forgetting publications makes every queued job unpublished again.
    assert_eq!(store.forget_publications().await.unwrap(), 2);
    assert_eq!(
        store.unpublished_jobs(Duration::ZERO, 100).await.unwrap(),
        [a.id.clone(), b.id.clone()]
    );
    // A batch marks each of its jobs.
    store
        .mark_published(&[b.id.clone(), a.id.clone()])
        .await
        .unwrap();
    assert!(
        store
            .unpublished_jobs(Duration::ZERO, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------------------
// Notifications and health
// ---------------------------------------------------------------------------

async fn notifications_carry_job_ids(store: Store) {
    create_app(&store, "web").await;
    let events = store.notifications(JOB_EVENTS_CHANNEL).await.unwrap();
    let mut events = events.subscribe();

    let queued = create_job(&store, "web").await;
    store
        .append_logs(&queued.id, &[chunk(1, b"hi")])
        .await
        .unwrap();
    expect_wake_up(&mut events, &queued.id, "append_logs").await;
    let fence = claim(&store, &queued.id, "w1", LEASE).await.fence;
    expect_wake_up(&mut events, &queued.id, "claim").await;
    assert!(store.mark_running(&fence).await.unwrap());
    expect_wake_up(&mut events, &queued.id, "mark_running").await;
    assert!(matches!(
        store.cancel_job(&queued.id).await.unwrap(),
        CancelOutcome::StopRequested(_)
    ));
    assert!(
        store
            .finish(&fence, JobState::Canceled, Some(143), None)
            .await
            .unwrap()
    );
    expect_wake_up(&mut events, &queued.id, "finish").await;

    let other = create_job(&store, "web").await;
    assert!(matches!(
        store.cancel_job(&other.id).await.unwrap(),
        CancelOutcome::CanceledWhileQueued(_)
    ));
    expect_wake_up(&mut events, &other.id, "cancel of a queued job").await;

    let third = create_job(&store, "web").await;
    let fence = claim(&store, &third.id, "w1", LEASE).await.fence;
    assert!(store.requeue_unstarted(&fence).await.unwrap());
    expect_wake_up(&mut events, &third.id, "requeue_unstarted").await;
    claim(&store, &third.id, "w1", TINY_LEASE).await;
    reap_until(&store, &[&third.id]).await;
    expect_wake_up(&mut events, &third.id, "reap_expired_leases").await;

    // Subscribers of one notifications handle each get every wake-up.
    let handle = store.notifications(JOB_EVENTS_CHANNEL).await.unwrap();
    let mut first = handle.subscribe();
    let mut second = handle.subscribe();
    store
        .append_logs(&third.id, &[chunk(1, b"x")])
        .await
        .unwrap();
    expect_wake_up(&mut first, &third.id, "first subscriber").await;
    expect_wake_up(&mut second, &third.id, "second subscriber").await;
}

async fn ping_answers(store: Store) {
    store.ping().await.expect("ping");
}

async fn the_deployment_has_one_name(store: Store) {
    let id = store.deployment_id().await.unwrap();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    assert_eq!(store.deployment_id().await.unwrap(), id);
}

// ---------------------------------------------------------------------------
// API tokens
// ---------------------------------------------------------------------------

/// A token to store; its hash is 32 bytes derived from `seed`, standing in
/// for the SHA-256 of a secret (the store never sees secrets).
fn new_token(app: Option<&str>, role: Role, seed: u8, expires_in: Option<Duration>) -> NewToken {
    NewToken {
        app: app.map(str::to_owned),
        role,
        secret_hash: vec![seed; 32],
        description: Some(format!("token {seed}")),
        expires_in,
    }
}

async fn tokens_create_find_list_revoke(store: Store) {
    create_app(&store, "web").await;
    let global = store
        .create_token(&new_token(None, Role::Admin, 1, None))
        .await
        .expect("create a global token");
    let bound = store
        .create_token(&new_token(Some("web"), Role::Read, 2, None))
        .await
        .expect("create an app token");
    assert_ne!(global.id, bound.id);
    assert!(global.id.starts_with("tok_"), "{}", global.id);
    assert_eq!((global.app.as_deref(), global.role), (None, Role::Admin));
    assert_eq!(
        (bound.app.as_deref(), bound.role),
        (Some("web"), Role::Read)
    );
    assert_eq!(bound.description.as_deref(), Some("token 2"));
    assert_eq!((bound.expires_at, bound.revoked_at), (None, None));
    let skew = (Utc::now() - bound.created_at).num_seconds().abs();
    assert!(skew < 60, "created_at is {skew} s away from now");

    // Found by hash, and only by the exact hash.
    assert_eq!(
        store.find_token_by_hash(&[2; 32]).await.unwrap(),
        Some(bound.clone())
    );
    assert_eq!(store.find_token_by_hash(&[3; 32]).await.unwrap(), None);
    assert_eq!(store.find_token_by_hash(&[]).await.unwrap(), None);

    assert_eq!(
        store.list_tokens(None).await.unwrap(),
        vec![global.clone(), bound.clone()]
    );
    assert_eq!(
        store.list_tokens(Some("web")).await.unwrap(),
        vec![bound.clone()]
    );
    assert_eq!(store.list_tokens(Some("other")).await.unwrap(), vec![]);

    // Revocation takes effect for the very next lookup, and sticks.
    assert!(store.revoke_token(&bound.id).await.unwrap());
    assert_eq!(store.find_token_by_hash(&[2; 32]).await.unwrap(), None);
    let revoked = store
        .get_token(&bound.id)
        .await
        .unwrap()
        .expect("still listed");
    let revoked_at = revoked.revoked_at.expect("revoked_at is set");
    assert!(
        store.revoke_token(&bound.id).await.unwrap(),
        "revoking twice is fine"
    );
    let again = store.get_token(&bound.id).await.unwrap().unwrap();
    assert_eq!(
        again.revoked_at,
        Some(revoked_at),
        "the first revocation time stays"
    );
    assert!(!store.revoke_token("tok_nope").await.unwrap());
    assert_eq!(store.get_token("tok_nope").await.unwrap(), None);
    // The other token is untouched.
    assert_eq!(
        store.find_token_by_hash(&[1; 32]).await.unwrap(),
        Some(global)
    );

    // A second token with the same hash is refused, not stored.
    let clash = store
        .create_token(&new_token(None, Role::Read, 1, None))
        .await;
    assert!(matches!(clash, Err(StoreError::Database(_))), "{clash:?}");
}

async fn tokens_expire_by_the_database_clock(store: Store) {
    let long = store
        .create_token(&new_token(
            None,
            Role::Run,
            1,
            Some(Duration::from_secs(3600)),
        ))
        .await
        .unwrap();
    let expires_at = long.expires_at.expect("expires_at is set");
    assert_eq!((expires_at - long.created_at).num_seconds(), 3600);
    assert_eq!(
        store.find_token_by_hash(&[1; 32]).await.unwrap(),
        Some(long)
    );

    let short = store
        .create_token(&new_token(
            None,
            Role::Run,
            2,
            Some(Duration::from_millis(1)),
        ))
        .await
        .unwrap();
    eventually("the short token expires", || {
        let store = store.clone();
        async move {
            store
                .find_token_by_hash(&[2; 32])
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    // Expired tokens stay listed, for the record.
    let listed = store.list_tokens(None).await.unwrap();
    assert!(listed.iter().any(|token| token.id == short.id));
}

async fn tokens_need_their_app_and_go_with_it(store: Store) {
    let missing = store
        .create_token(&new_token(Some("nope"), Role::Read, 1, None))
        .await;
    assert!(
        matches!(&missing, Err(StoreError::AppNotFound(app)) if app == "nope"),
        "{missing:?}"
    );
    assert_eq!(store.list_tokens(None).await.unwrap(), vec![]);

    create_app(&store, "web").await;
    store
        .create_token(&new_token(Some("web"), Role::Run, 2, None))
        .await
        .unwrap();
    store.delete_app("web").await.unwrap();
    assert_eq!(store.find_token_by_hash(&[2; 32]).await.unwrap(), None);
    assert_eq!(store.list_tokens(None).await.unwrap(), vec![]);
}

// ---------------------------------------------------------------------------
// SQLite only: how `Store::connect` opens files.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sqlite_urls_create_the_file_and_keep_data() {
    let dir = std::env::temp_dir().join(format!(
        "jobs-store-contract-{}",
        uuid::Uuid::now_v7().simple()
    ));
    let file = dir.join("nested").join("jobs.db");
    let urls = [
        format!("sqlite://{}", file.display()),
        format!("sqlite:{}?mode=rwc", file.display()),
    ];
    {
        let store = Store::connect(&urls[0])
            .await
            .expect("connect creates the file");
        assert!(matches!(store, Store::Sqlite(_)));
        assert!(file.exists());
        create_app(&store, "web").await;
        if let Store::Sqlite(sqlite) = &store {
            sqlite.pool().close().await;
        }
    }
    {
        // Opened again (migrations already applied), with the other spelling.
        let store = Store::connect(&urls[1]).await.expect("reopen");
        assert_eq!(store.get_app("web").await.unwrap().name, "web");
        if let Store::Sqlite(sqlite) = &store {
            let (mode,): (String,) = sqlx::query_as("pragma journal_mode")
                .fetch_one(sqlite.pool())
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            let (fk,): (i64,) = sqlx::query_as("pragma foreign_keys")
                .fetch_one(sqlite.pool())
                .await
                .unwrap();
            assert_eq!(fk, 1);
            sqlite.pool().close().await;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// Interactive runs and the worker registry
// ---------------------------------------------------------------------------

fn endpoint() -> AttachEndpoint {
    AttachEndpoint {
        url: "http://127.0.0.1:8420".to_owned(),
        secret: "jobs_attach-secret".to_owned(),
    }
}

async fn create_interactive(store: &Store, app: &str, tty: bool) -> Job {
    let create = JobCreate {
        interactive: Some(jobs_core::wire::Interactive { tty }),
        ..job_create()
    };
    let (job, created) = store
        .create_job_within(
            app,
            &create,
            None,
            Some(&endpoint()),
            Some("token tok_1 (ci)"),
        )
        .await
        .expect("create an interactive job");
    assert!(created);
    job
}

async fn interactive_jobs_are_never_published_and_carry_their_endpoint(store: Store) {
    create_app(&store, "web").await;
    let queued = create_job(&store, "web").await;
    let interactive = create_interactive(&store, "web", true).await;
    assert_eq!(
        interactive.interactive,
        Some(jobs_core::wire::Interactive { tty: true })
    );
    assert_eq!(queued.interactive, None);
    assert_eq!(
        store.get_job(&interactive.id).await.unwrap().interactive,
        Some(jobs_core::wire::Interactive { tty: true })
    );
    // Who created it is kept as given; a job created without is `None`.
    assert_eq!(
        store
            .get_job(&interactive.id)
            .await
            .unwrap()
            .created_by
            .as_deref(),
        Some("token tok_1 (ci)")
    );
    assert_eq!(queued.created_by, None);

    // The relay sees only the queued job, even after a forget.
    let unpublished = store.unpublished_jobs(Duration::ZERO, 10).await.unwrap();
    assert_eq!(unpublished, vec![queued.id.clone()]);
    store.forget_publications().await.unwrap();
    let unpublished = store.unpublished_jobs(Duration::ZERO, 10).await.unwrap();
    assert_eq!(unpublished, vec![queued.id.clone()]);

    let stored = store
        .attach_endpoint(&interactive.id)
        .await
        .unwrap()
        .expect("an interactive job has an endpoint");
    assert_eq!(stored.url, "http://127.0.0.1:8420");
    assert_eq!(stored.secret, "jobs_attach-secret");
    assert_eq!(store.attach_endpoint(&queued.id).await.unwrap(), None);
    assert_eq!(store.attach_endpoint("nope").await.unwrap(), None);

    assert_eq!(
        store.queued_interactive_jobs().await.unwrap(),
        vec![interactive.id.clone()]
    );
    let claimed = store
        .claim(&interactive.id, "w1", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.attach, Some(endpoint()));
    let claimed = store.claim(&queued.id, "w1", LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.attach, None);
    assert!(store.queued_interactive_jobs().await.unwrap().is_empty());
}

async fn interactive_jobs_are_lost_not_requeued(store: Store) {
    create_app(&store, "web").await;
    let interactive = create_interactive(&store, "web", false).await;
    let queued = create_job(&store, "web").await;
    store
        .claim(&interactive.id, "w1", TINY_LEASE)
        .await
        .unwrap()
        .unwrap();
    store
        .claim(&queued.id, "w1", TINY_LEASE)
        .await
        .unwrap()
        .unwrap();
    let report = reap_until(&store, &[&interactive.id, &queued.id]).await;
    // A client waits for an interactive run now, not through a queue later.
    assert!(report.lost.contains(&interactive.id), "{report:?}");
    assert!(report.requeued.contains(&queued.id), "{report:?}");
    assert_eq!(
        store.get_job(&interactive.id).await.unwrap().state,
        JobState::Lost
    );
}

async fn workers_registry_lists_live_workers_with_free_slots(store: Store) {
    let fresh = Duration::from_secs(60);
    assert!(store.free_workers(fresh).await.unwrap().is_empty());
    store.upsert_worker("busy", 2, 0, "1.0.0").await.unwrap();
    store.upsert_worker("one", 4, 1, "1.0.0").await.unwrap();
    store.upsert_worker("three", 4, 3, "1.0.0").await.unwrap();
    assert_eq!(store.free_workers(fresh).await.unwrap(), ["three", "one"]);
    // An update replaces the row: `three` is full now.
    store.upsert_worker("three", 4, 0, "1.0.0").await.unwrap();
    assert_eq!(store.free_workers(fresh).await.unwrap(), ["one"]);
    // Not heard from within the window: not live.
    assert!(store.free_workers(Duration::ZERO).await.unwrap().is_empty());
    // Listed busy or not, each with its slots.
    let listed: Vec<(String, i32, i32)> = store
        .list_workers(fresh)
        .await
        .unwrap()
        .into_iter()
        .map(|worker| (worker.id, worker.slots, worker.free_slots))
        .collect();
    let mut sorted = listed;
    sorted.sort();
    assert_eq!(
        sorted,
        [
            ("busy".into(), 2, 0),
            ("one".into(), 4, 1),
            ("three".into(), 4, 0)
        ]
    );
    // Their order (latest write first) is not asserted: SQLite's clock has
    // millisecond resolution, so the three writes may tie.
    store.remove_worker("one").await.unwrap();
    assert!(store.free_workers(fresh).await.unwrap().is_empty());
    assert_eq!(store.list_workers(fresh).await.unwrap().len(), 2);
}

async fn drained_workers_claim_nothing_and_keep_their_drain(store: Store) {
    let fresh = Duration::from_secs(60);
    create_app(&store, "web").await;
    assert!(!store.upsert_worker("w1", 2, 2, "1.0.0").await.unwrap());
    assert!(!store.upsert_worker("w2", 2, 2, "1.0.0").await.unwrap());
    let running = create_job(&store, "web").await;
    claim(&store, &running.id, "w1", LEASE).await;
    let waiting = create_job(&store, "web").await;

    // Draining: the worker as it stands, with the job it holds.
    let drained = store
        .set_worker_draining("w1", true, fresh)
        .await
        .unwrap()
        .expect("w1 is registered");
    assert_eq!(drained.id, "w1");
    assert_eq!(drained.version.as_deref(), Some("1.0.0"));
    assert_eq!(drained.running_jobs, vec![running.id.clone()]);
    assert!(!drained.stale);
    let since = drained.draining_since.expect("draining");
    // A repeated drain keeps the first time; unknown workers are None.
    let again = store.set_worker_draining("w1", true, fresh).await.unwrap();
    assert_eq!(again.unwrap().draining_since, Some(since));
    assert!(
        store
            .set_worker_draining("nope", true, fresh)
            .await
            .unwrap()
            .is_none()
    );

    // A drained worker claims nothing and is offered nothing; its
    // heartbeat reads the drain back and leaves it alone.
    assert!(
        store
            .claim(&waiting.id, "w1", LEASE)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(job(&store, &waiting.id).await.state, JobState::Queued);
    assert!(store.worker_draining("w1").await.unwrap());
    assert!(!store.worker_draining("w2").await.unwrap());
    assert!(store.upsert_worker("w1", 2, 1, "1.1.0").await.unwrap());
    assert_eq!(store.free_workers(fresh).await.unwrap(), ["w2"]);
    let (_, capacity) = store
        .queue_place(&waiting.id, fresh)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        capacity,
        Capacity {
            workers: 2,
            draining: 1,
            slots: 2,
            free_slots: 2,
            // The job w2 runs, of the same app.
            app_running: 1,
            app_max_running: None,
            ..Capacity::default()
        }
    );

    // A drain outlives the worker's shutdown; undoing it is idempotent.
    store.remove_worker("w1").await.unwrap();
    let listed = store.list_workers(fresh).await.unwrap();
    let w1 = listed.iter().find(|worker| worker.id == "w1").unwrap();
    assert_eq!(
        (w1.version.as_deref(), w1.draining_since),
        (Some("1.1.0"), Some(since))
    );
    assert!(
        listed
            .iter()
            .find(|w| w.id == "w2")
            .unwrap()
            .running_jobs
            .is_empty()
    );
    for _ in 0..2 {
        let undone = store.set_worker_draining("w1", false, fresh).await.unwrap();
        assert_eq!(undone.unwrap().draining_since, None);
    }
    assert!(!store.upsert_worker("w1", 2, 1, "1.1.0").await.unwrap());
    assert!(
        store
            .claim(&waiting.id, "w1", LEASE)
            .await
            .unwrap()
            .is_some()
    );
    // Not heard from within the window: stale. Undrained, it goes at shutdown.
    assert!(
        store
            .list_workers(Duration::ZERO)
            .await
            .unwrap()
            .iter()
            .all(|w| w.stale)
    );
    store.remove_worker("w1").await.unwrap();
    assert_eq!(store.list_workers(fresh).await.unwrap().len(), 1);
}

async fn silent_workers_are_forgotten_unless_draining_or_holding_a_job(store: Store) {
    let fresh = Duration::from_secs(60);
    create_app(&store, "web").await;
    for id in ["gone", "busy", "drained"] {
        store.upsert_worker(id, 2, 2, "1.0.0").await.unwrap();
    }
    let held = create_job(&store, "web").await;
    claim(&store, &held.id, "busy", LEASE).await;
    store
        .set_worker_draining("drained", true, fresh)
        .await
        .unwrap();
    // Heard from within the window: nobody is forgotten.
    assert!(store.forget_stale_workers(fresh).await.unwrap().is_empty());
    // Past it (a zero window: every heartbeat is old enough), only the one
    // that is neither draining nor holding a job goes.
    assert_eq!(
        store.forget_stale_workers(Duration::ZERO).await.unwrap(),
        ["gone"]
    );
    let mut left: Vec<String> = store
        .list_workers(fresh)
        .await
        .unwrap()
        .into_iter()
        .map(|worker| worker.id)
        .collect();
    left.sort();
    assert_eq!(left, ["busy", "drained"]);
}

async fn queued_jobs_know_their_place_and_the_capacity(store: Store) {
    let fresh = Duration::from_secs(60);
    create_app(&store, "web").await;
    create_app(&store, "api").await;
    let first = create_job(&store, "web").await.id;
    let second = create_job(&store, "api").await.id;
    let interactive = store
        .create_job(
            "web",
            &JobCreate {
                interactive: Some(jobs_core::wire::Interactive { tty: false }),
                ..job_create()
            },
        )
        .await
        .unwrap()
        .0
        .id;
    let third = create_job(&store, "web").await.id;
    let none = Capacity::default();
    // A line per app, in creation order at one priority; interactive runs
    // have one of their own.
    assert_eq!(
        store.queue_place(&first, fresh).await.unwrap(),
        Some((1, none))
    );
    assert_eq!(
        store.queue_place(&second, fresh).await.unwrap(),
        Some((1, none))
    );
    assert_eq!(
        store.queue_place(&third, fresh).await.unwrap(),
        Some((2, none))
    );
    assert_eq!(
        store.queue_place(&interactive, fresh).await.unwrap(),
        Some((1, none))
    );
    // The same places for several at once; an unknown id is left out.
    let ids = [
        &first,
        &second,
        &third,
        &interactive,
        &"no-such-job".to_owned(),
    ]
    .map(|id| (*id).clone());
    assert_eq!(
        store.queue_places(&ids, fresh).await.unwrap(),
        std::collections::HashMap::from([
            (first.clone(), (1, none)),
            (second.clone(), (1, none)),
            (third.clone(), (2, none)),
            (interactive.clone(), (1, none)),
        ])
    );
    assert!(store.queue_places(&[], fresh).await.unwrap().is_empty());

    store.upsert_worker("a", 4, 0, "1.0.0").await.unwrap();
    store.upsert_worker("b", 2, 1, "1.0.0").await.unwrap();
    let live = Capacity {
        workers: 2,
        draining: 0,
        slots: 6,
        free_slots: 1,
        ..Capacity::default()
    };
    assert_eq!(
        store.queue_place(&third, fresh).await.unwrap(),
        Some((2, live))
    );
    // Workers not heard from within the window do not count.
    assert_eq!(
        store.queue_place(&third, Duration::ZERO).await.unwrap(),
        Some((2, none))
    );

    // A job that started has no place, and the ones behind it move up; its
    // app's running jobs count it, and the app's cap shows.
    claim(&store, &first, "a", LEASE).await;
    store
        .update_app(
            "web",
            &AppUpdate {
                max_running: Some(Some(1)),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.queue_place(&first, fresh).await.unwrap(), None);
    let at_cap = Capacity {
        app_running: 1,
        app_max_running: Some(1),
        ..live
    };
    assert_eq!(
        store.queue_place(&third, fresh).await.unwrap(),
        Some((1, at_cap))
    );
    assert_eq!(
        store.queue_place(&second, fresh).await.unwrap(),
        Some((1, live))
    );
    assert_eq!(store.queue_place("no-such-job", fresh).await.unwrap(), None);
}

async fn queue_timeouts_cancel_jobs_no_worker_started(store: Store) {
    create_app(&store, "web").await;
    let impatient = store
        .create_job(
            "web",
            &JobCreate {
                queue_timeout_seconds: Some(1),
                ..job_create()
            },
        )
        .await
        .unwrap()
        .0;
    let patient = create_job(&store, "web").await;
    let started = store
        .create_job(
            "web",
            &JobCreate {
                queue_timeout_seconds: Some(1),
                ..job_create()
            },
        )
        .await
        .unwrap()
        .0;
    let running = claim(&store, &started.id, "w1", LEASE).await;
    assert!(store.mark_running(&running.fence).await.unwrap());

    let report = reap_until(&store, &[&impatient.id]).await;
    assert_eq!(report.expired, vec![impatient.id.clone()]);
    let ended = job(&store, &impatient.id).await;
    assert_eq!(ended.state, JobState::Canceled);
    assert_eq!(
        ended.reason.as_deref(),
        Some("not started within its queue timeout of 1s")
    );
    assert!(ended.finished_at.is_some());
    assert_eq!(ended.exit_code, None);
    assert_eq!(job(&store, &patient.id).await.state, JobState::Queued);
    assert_eq!(job(&store, &started.id).await.state, JobState::Running);
}

async fn stop_intents_reach_the_worker_that_takes_over(store: Store) {
    create_app(&store, "web").await;
    let timed = claim(&store, &create_job(&store, "web").await.id, "w1", LEASE).await;
    let canceled = claim(&store, &create_job(&store, "web").await.id, "w1", LEASE).await;
    let plain = claim(&store, &create_job(&store, "web").await.id, "w1", LEASE).await;
    for claimed in [&timed, &canceled, &plain] {
        assert!(store.mark_running(&claimed.fence).await.unwrap());
    }
    assert!(store.record_stop(&timed.fence, "timed_out").await.unwrap());
    store.cancel_job(&canceled.fence.job_id).await.unwrap();
    // A stale fence records nothing.
    let stale = Fence {
        attempt: timed.fence.attempt + 1,
        ..timed.fence.clone()
    };
    assert!(!store.record_stop(&stale, "canceled").await.unwrap());

    let held = store.jobs_held_by("w1").await.unwrap();
    let intent = |id: &str| {
        held.iter()
            .find(|job| job.fence.job_id == id)
            .map(|job| job.stop_reason.clone())
            .expect("held")
    };
    assert_eq!(intent(&timed.fence.job_id).as_deref(), Some("timed_out"));
    assert_eq!(intent(&canceled.fence.job_id).as_deref(), Some("canceled"));
    assert_eq!(intent(&plain.fence.job_id), None);
}

async fn a_job_whose_start_was_requested_is_never_queued_again(store: Store) {
    create_app(&store, "web").await;
    let held = claim(&store, &create_job(&store, "web").await.id, "w1", LEASE).await;
    let reaped = claim(
        &store,
        &create_job(&store, "web").await.id,
        "w1",
        TINY_LEASE,
    )
    .await;
    for claimed in [&held, &reaped] {
        assert!(store.record_start(&claimed.fence).await.unwrap());
    }
    // The restarted worker may not put it back: its command may have run.
    assert!(!store.requeue_unstarted(&held.fence).await.unwrap());
    assert_eq!(
        job(&store, &held.fence.job_id).await.state,
        JobState::Starting
    );
    // Nor may the reaper: the expired lease makes it lost.
    let report = reap_until(&store, &[&reaped.fence.job_id]).await;
    assert_eq!(report.lost, vec![reaped.fence.job_id.clone()]);
    assert!(report.requeued.is_empty());
    let lost = job(&store, &reaped.fence.job_id).await;
    assert_eq!(
        (lost.state, lost.reason.as_deref()),
        (JobState::Lost, Some("worker lost"))
    );
    // A stale fence records nothing.
    let stale = Fence {
        attempt: held.fence.attempt + 1,
        ..held.fence.clone()
    };
    assert!(!store.record_start(&stale).await.unwrap());
}

// ---------------------------------------------------------------------------
// Uploads and artifacts
// ---------------------------------------------------------------------------

fn upload(name: &str, size: i64) -> Upload {
    Upload {
        id: jobs_store::new_upload_id(),
        name: name.to_owned(),
        size,
        sha256: format!("{:064x}", size),
    }
}

fn with_uploads(uploads: &[&Upload]) -> JobCreate {
    JobCreate {
        uploads: uploads
            .iter()
            .map(|u| UploadRef {
                id: u.id.clone(),
                sha256: u.sha256.clone(),
            })
            .collect(),
        artifacts: vec!["/out/a".to_owned(), "/out/b".to_owned()],
        ..job_create()
    }
}

async fn uploads_are_taken_by_one_job_in_order(store: Store) {
    create_app(&store, "web").await;
    let first = upload("a.csv", 10);
    let second = upload("b.bin", 20);
    store.create_upload("web", &first).await.unwrap();
    store.create_upload("web", &second).await.unwrap();
    let free = store
        .free_uploads(
            "web",
            &[first.id.clone(), second.id.clone(), "upl_nope".into()],
        )
        .await
        .unwrap();
    assert_eq!(free.len(), 2);

    let (created, _) = store
        .create_job("web", &with_uploads(&[&second, &first]))
        .await
        .unwrap();
    assert_eq!(created.uploads, vec![second.clone(), first.clone()]);
    assert_eq!(created.artifact_paths, vec!["/out/a", "/out/b"]);
    assert!(created.artifacts.is_empty());
    assert_eq!(job(&store, &created.id).await, created);
    let claimed = claim(&store, &created.id, "w1", LEASE).await;
    assert_eq!(claimed.job.uploads, created.uploads);

    // Taken: no longer free, and no second job may take it.
    assert!(
        store
            .free_uploads("web", std::slice::from_ref(&first.id))
            .await
            .unwrap()
            .is_empty()
    );
    let before = store.list_jobs("web", None, 100).await.unwrap().len();
    let again = store.create_job("web", &with_uploads(&[&first])).await;
    assert!(
        matches!(again, Err(StoreError::UploadNotFound(ref id)) if *id == first.id),
        "{again:?}"
    );
    assert_eq!(
        store.list_jobs("web", None, 100).await.unwrap().len(),
        before
    );
}

async fn uploads_of_another_app_or_unknown_are_refused_creating_nothing(store: Store) {
    create_app(&store, "web").await;
    create_app(&store, "other").await;
    let theirs = upload("x", 1);
    store.create_upload("other", &theirs).await.unwrap();
    let refused = store.create_job("web", &with_uploads(&[&theirs])).await;
    assert!(
        matches!(refused, Err(StoreError::UploadNotFound(_))),
        "{refused:?}"
    );
    assert!(store.list_jobs("web", None, 10).await.unwrap().is_empty());
    // Still free for its own app.
    assert_eq!(
        store
            .free_uploads("other", std::slice::from_ref(&theirs.id))
            .await
            .unwrap(),
        vec![theirs]
    );
    let missing_app = store.create_upload("nope", &upload("y", 1)).await;
    assert!(
        matches!(missing_app, Err(StoreError::AppNotFound(_))),
        "{missing_app:?}"
    );
}

async fn artifacts_are_recorded_fenced_before_the_end(store: Store) {
    create_app(&store, "web").await;
    let (queued, _) = store.create_job("web", &with_uploads(&[])).await.unwrap();
    let claimed = claim(&store, &queued.id, "w1", LEASE).await;
    let artifacts = two_artifacts();
    let stale = Fence {
        worker_id: "w2".into(),
        ..claimed.fence.clone()
    };
    assert!(!store.record_artifacts(&stale, &artifacts).await.unwrap());
    assert!(
        store
            .record_artifacts(&claimed.fence, &artifacts)
            .await
            .unwrap()
    );
    assert!(
        store
            .finish(&claimed.fence, JobState::Succeeded, Some(0), None)
            .await
            .unwrap()
    );
    let ended = job(&store, &queued.id).await;
    assert_eq!(ended.artifacts, artifacts);
    assert!(ended.artifacts[0].collected() && !ended.artifacts[1].collected());
    // Once ended, nothing changes them.
    assert!(!store.record_artifacts(&claimed.fence, &[]).await.unwrap());
}

async fn purge_deletes_long_ended_jobs_and_free_uploads(store: Store) {
    create_app(&store, "web").await;
    let taken = upload("taken", 5);
    let free = upload("free", 6);
    store.create_upload("web", &taken).await.unwrap();
    store.create_upload("web", &free).await.unwrap();
    let (ended, _) = store
        .create_job("web", &with_uploads(&[&taken]))
        .await
        .unwrap();
    let fence = claim(&store, &ended.id, "w1", LEASE).await.fence;
    let artifacts = vec![Artifact {
        path: "/out/a".into(),
        size: Some(1),
        error: None,
    }];
    assert!(store.record_artifacts(&fence, &artifacts).await.unwrap());
    assert!(
        store
            .finish(&fence, JobState::Failed, Some(1), Some("exit status 1"))
            .await
            .unwrap()
    );
    let running = create_job(&store, "web").await;
    claim(&store, &running.id, "w1", LEASE).await;

    // Nothing is old enough yet.
    let long = Duration::from_secs(3600);
    assert!(store.purge_ended_jobs(long, 100).await.unwrap().is_empty());
    assert!(
        store
            .purge_free_uploads(long, 100)
            .await
            .unwrap()
            .is_empty()
    );

    tokio::time::sleep(Duration::from_millis(20)).await;
    let short = Duration::from_millis(5);
    let purged = store.purge_ended_jobs(short, 100).await.unwrap();
    assert_eq!(purged.len(), 1, "only the ended job: {purged:?}");
    assert_eq!(purged[0].id, ended.id);
    assert_eq!(purged[0].uploads, vec![taken.clone()]);
    assert_eq!(purged[0].artifacts, artifacts);
    assert!(matches!(
        store.get_job(&ended.id).await,
        Err(StoreError::JobNotFound(_))
    ));
    assert_eq!(job(&store, &running.id).await.state, JobState::Starting);

    let gone = store.purge_free_uploads(short, 100).await.unwrap();
    assert_eq!(gone, vec![free.id.clone()]);
    assert!(
        store
            .free_uploads("web", std::slice::from_ref(&free.id))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .purge_free_uploads(short, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn deleting_an_app_names_the_objects_it_leaves(store: Store) {
    create_app(&store, "web").await;
    create_app(&store, "other").await;
    let taken = upload("a.csv", 10);
    let free = upload("b.bin", 20);
    let elsewhere = upload("c.txt", 30);
    store.create_upload("web", &taken).await.unwrap();
    store.create_upload("web", &free).await.unwrap();
    store.create_upload("other", &elsewhere).await.unwrap();
    let (job, _) = store
        .create_job("web", &with_uploads(&[&taken]))
        .await
        .unwrap();
    let claimed = claim(&store, &job.id, "w1", LEASE).await;
    assert!(
        store
            .finish(&claimed.fence, JobState::Succeeded, Some(0), None)
            .await
            .unwrap()
    );

    let deleted = store.delete_app("web").await.unwrap();
    assert_eq!(deleted.jobs.len(), 1, "{deleted:?}");
    assert_eq!(deleted.jobs[0].id, job.id);
    assert_eq!(deleted.jobs[0].uploads, vec![taken]);
    assert_eq!(deleted.free_uploads, vec![free.id]);
    // Another app's uploads stay.
    assert_eq!(
        store
            .free_uploads("other", std::slice::from_ref(&elsewhere.id))
            .await
            .unwrap()
            .len(),
        1
    );
}

// ---------------------------------------------------------------------------
// Scheduling: which job a free slot takes
// ---------------------------------------------------------------------------

async fn create_app_with(store: &Store, name: &str, max_running: Option<u32>, weight: u32) {
    create_app(store, name).await;
    store
        .update_app(
            name,
            &AppUpdate {
                max_running: Some(max_running),
                weight: Some(weight),
                ..AppUpdate::default()
            },
        )
        .await
        .expect("update_app");
}

async fn create_job_with(store: &Store, app: &str, priority: Priority) -> Job {
    store
        .create_job(
            app,
            &JobCreate {
                priority: Some(priority),
                ..job_create()
            },
        )
        .await
        .expect("create_job")
        .0
}

/// Every job `claim_next` gives, until it gives none.
async fn claim_all(store: &Store, worker: &str) -> Vec<ClaimedJob> {
    let mut claimed = Vec::new();
    while let Some(job) = store.claim_next(worker, LEASE).await.expect("claim_next") {
        claimed.push(job);
    }
    claimed
}

async fn apps_max_running_and_weight_round_trip(store: Store) {
    create_app(&store, "web").await;
    let app = store.get_app("web").await.unwrap();
    assert_eq!((app.max_running, app.weight), (None, 1));
    let app = store
        .update_app(
            "web",
            &AppUpdate {
                max_running: Some(Some(3)),
                weight: Some(5),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((app.max_running, app.weight), (Some(3), 5));
    let lifted = store
        .update_app(
            "web",
            &AppUpdate {
                max_running: Some(None),
                ..AppUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((lifted.max_running, lifted.weight), (None, 5));
}

async fn scheduling_shares_slots_between_apps_by_weight(store: Store) {
    create_app_with(&store, "big", None, 2).await;
    create_app_with(&store, "small", None, 1).await;
    // `big` queued all of its backlog first; `small` comes later.
    for _ in 0..20 {
        create_job(&store, "big").await;
    }
    for _ in 0..20 {
        create_job(&store, "small").await;
    }
    let mut running = BTreeMap::<String, usize>::new();
    for _ in 0..9 {
        let claimed = store.claim_next("w1", LEASE).await.unwrap().unwrap();
        *running.entry(claimed.job.app.clone()).or_default() += 1;
    }
    // Slots go by running jobs per unit of weight, never first come first
    // served: 6 and 3 for weights 2 and 1.
    assert_eq!(running["big"], 6, "{running:?}");
    assert_eq!(running["small"], 3, "{running:?}");

    // A newcomer's job takes the next free slot, whatever the backlogs.
    create_app(&store, "newcomer").await;
    let late = create_job(&store, "newcomer").await;
    let next = store.claim_next("w1", LEASE).await.unwrap().unwrap();
    assert_eq!(next.job.id, late.id);
}

async fn scheduling_never_passes_an_app_s_cap(store: Store) {
    create_app_with(&store, "capped", Some(2), 1).await;
    create_app(&store, "other").await;
    let capped: Vec<Job> = create_jobs(&store, "capped", 5).await;
    let claimed = claim_all(&store, "w1").await;
    assert_eq!(claimed.len(), 2, "two of the capped app's five");
    // A direct claim (an interactive run's) counts against the cap too.
    assert!(
        store
            .claim(&capped[4].id, "w1", LEASE)
            .await
            .unwrap()
            .is_none()
    );
    // Another app's job still starts.
    let other = create_job(&store, "other").await;
    let next = store.claim_next("w1", LEASE).await.unwrap().unwrap();
    assert_eq!(next.job.id, other.id);
    // An end frees a place under the cap, for the next in line.
    store
        .finish(&claimed[0].fence, JobState::Succeeded, Some(0), None)
        .await
        .unwrap();
    let next = store.claim_next("w1", LEASE).await.unwrap().unwrap();
    assert_eq!(next.job.id, capped[2].id);
    assert!(store.claim_next("w1", LEASE).await.unwrap().is_none());

    // Concurrent claims never pass the cap either.
    create_app_with(&store, "raced", Some(3), 1).await;
    create_jobs(&store, "raced", 40).await;
    let mut tries = tokio::task::JoinSet::new();
    for worker in 0..40 {
        let store = store.clone();
        tries.spawn(async move { store.claim_next(&format!("w{worker}"), LEASE).await });
    }
    let mut raced = 0;
    while let Some(claim) = tries.join_next().await {
        if let Some(job) = claim.unwrap().unwrap() {
            if job.job.app == "raced" {
                raced += 1;
            }
        }
    }
    assert_eq!(raced, 3);
}

async fn create_jobs(store: &Store, app: &str, count: usize) -> Vec<Job> {
    let mut jobs = Vec::new();
    for _ in 0..count {
        jobs.push(create_job(store, app).await);
    }
    jobs
}

async fn scheduling_orders_an_app_s_line_by_priority_then_age(store: Store) {
    create_app(&store, "web").await;
    let low = create_job_with(&store, "web", Priority::Low).await;
    let normal_1 = create_job_with(&store, "web", Priority::Normal).await;
    let normal_2 = create_job_with(&store, "web", Priority::Normal).await;
    let high = create_job_with(&store, "web", Priority::High).await;
    assert_eq!(job(&store, &high.id).await.priority, Priority::High);
    let order: Vec<String> = claim_all(&store, "w1")
        .await
        .into_iter()
        .map(|claimed| claimed.job.id)
        .collect();
    assert_eq!(order, [high.id, normal_1.id, normal_2.id, low.id]);
}

// ---------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------

async fn create_group(store: &Store, app: &str, tasks: u32, parallelism: Option<u32>) -> Group {
    let (group, created) = store
        .create_group(
            app,
            &GroupCreate {
                job: job_create(),
                tasks,
                parallelism,
            },
            None,
            Some("token t1"),
        )
        .await
        .expect("create_group");
    assert!(created);
    group
}

async fn groups_make_every_task_with_its_index_and_keep_the_parallelism(store: Store) {
    create_app(&store, "web").await;
    let group = create_group(&store, "web", 4, Some(2)).await;
    assert!(group.id.starts_with("grp_"), "{}", group.id);
    assert_eq!((group.app.as_str(), group.parallelism), ("web", Some(2)));
    assert_eq!(group.command, job_create().command);
    assert_eq!(group.created_by.as_deref(), Some("token t1"));
    let indexes: Vec<u32> = group.tasks.iter().map(|task| task.index).collect();
    assert_eq!(indexes, [0, 1, 2, 3]);
    for task in &group.tasks {
        let job = job(&store, &task.job_id).await;
        assert_eq!(job.state, JobState::Queued);
        assert_eq!(job.group_id.as_deref(), Some(group.id.as_str()));
        assert_eq!(job.task_index, Some(task.index));
        assert_eq!(job.env["JOBS_TASK_INDEX"], task.index.to_string());
        assert_eq!(job.env["JOBS_TASK_COUNT"], "4");
        // The request's own env is kept.
        assert_eq!(job.env["SHARED"], job_create().env["SHARED"]);
    }
    // Two at once, by index; a job of the app created later still starts
    // past the group at its parallelism.
    let later = create_job(&store, "web").await;
    let claimed = claim_all(&store, "w1").await;
    let order: Vec<&str> = claimed.iter().map(|c| c.job.id.as_str()).collect();
    assert_eq!(
        order,
        [
            group.tasks[0].job_id.as_str(),
            group.tasks[1].job_id.as_str(),
            later.id.as_str()
        ]
    );
    // A direct claim is held to the parallelism too.
    assert!(
        store
            .claim(&group.tasks[2].job_id, "w1", LEASE)
            .await
            .unwrap()
            .is_none()
    );
    // An end frees a place for the next task.
    store
        .finish(&claimed[0].fence, JobState::Succeeded, Some(0), None)
        .await
        .unwrap();
    let next = store.claim_next("w1", LEASE).await.unwrap().unwrap();
    assert_eq!(next.job.id, group.tasks[2].job_id);
    assert!(store.claim_next("w1", LEASE).await.unwrap().is_none());
    let group = store.get_group(&group.id).await.unwrap();
    let states: Vec<JobState> = group.tasks.iter().map(|task| task.state).collect();
    assert_eq!(
        states,
        [
            JobState::Succeeded,
            JobState::Starting,
            JobState::Starting,
            JobState::Queued
        ]
    );
    assert!(matches!(
        store.get_group("grp_missing").await,
        Err(StoreError::GroupNotFound(_))
    ));
}

async fn groups_never_pass_their_parallelism_under_concurrent_claims(store: Store) {
    create_app(&store, "batch").await;
    let group = create_group(&store, "batch", 40, Some(3)).await;
    let mut tries = tokio::task::JoinSet::new();
    for worker in 0..40 {
        let store = store.clone();
        tries.spawn(async move { store.claim_next(&format!("w{worker}"), LEASE).await });
    }
    let mut claimed = 0;
    while let Some(claim) = tries.join_next().await {
        if claim.unwrap().unwrap().is_some() {
            claimed += 1;
        }
    }
    assert_eq!(claimed, 3);
    let group = store.get_group(&group.id).await.unwrap();
    let starting = group
        .tasks
        .iter()
        .filter(|task| task.state == JobState::Starting)
        .count();
    assert_eq!(starting, 3);
}

async fn groups_over_the_queued_limit_create_nothing(store: Store) {
    create_app(&store, "web").await;
    create_jobs(&store, "web", 3).await;
    let refused = store
        .create_group(
            "web",
            &GroupCreate {
                job: job_create(),
                tasks: 3,
                parallelism: None,
            },
            Some(5),
            None,
        )
        .await;
    match refused {
        Err(StoreError::TooManyTasks {
            queued: 3,
            tasks: 3,
            limit: 5,
            ..
        }) => {}
        other => panic!("expected TooManyTasks, got {other:?}"),
    }
    let jobs = store.list_jobs("web", None, 100).await.unwrap();
    assert_eq!(jobs.len(), 3, "nothing half-created");
    // Exactly up to the limit is fine.
    let (group, _) = store
        .create_group(
            "web",
            &GroupCreate {
                job: job_create(),
                tasks: 2,
                parallelism: None,
            },
            Some(5),
            None,
        )
        .await
        .unwrap();
    assert_eq!(group.tasks.len(), 2);
}

async fn groups_repeat_their_idempotency_key(store: Store) {
    create_app(&store, "web").await;
    let create = GroupCreate {
        job: JobCreate {
            idempotency_key: Some("import-7".into()),
            ..job_create()
        },
        tasks: 3,
        parallelism: Some(1),
    };
    let (first, created) = store
        .create_group("web", &create, None, None)
        .await
        .unwrap();
    assert!(created);
    let (again, created) = store
        .create_group("web", &create, None, None)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, first);
    let jobs = store.list_jobs("web", None, 100).await.unwrap();
    assert_eq!(jobs.len(), 3);
}

async fn groups_cancel_every_task(store: Store) {
    create_app(&store, "web").await;
    let group = create_group(&store, "web", 3, Some(1)).await;
    let running = store.claim_next("w1", LEASE).await.unwrap().unwrap();
    assert_eq!(running.job.id, group.tasks[0].job_id);
    let (canceled, stopping) = store.cancel_group(&group.id).await.unwrap();
    assert_eq!(stopping, [group.tasks[0].job_id.clone()]);
    assert_eq!(canceled.tasks[0].state, JobState::Starting);
    assert!(job(&store, &group.tasks[0].job_id).await.cancel_requested);
    for task in &canceled.tasks[1..] {
        assert_eq!(task.state, JobState::Canceled);
        assert_eq!(task.reason.as_deref(), Some("canceled while queued"));
    }
    assert!(store.claim_next("w1", LEASE).await.unwrap().is_none());
    store
        .finish(&running.fence, JobState::Canceled, None, Some("canceled"))
        .await
        .unwrap();
    let ended = store.get_group(&group.id).await.unwrap();
    assert!(ended.ended());
    assert_eq!(ended.cli_exit_code(), Some(125));
}

async fn groups_say_why_a_task_waits_and_go_whole_with_their_app_or_the_purge(store: Store) {
    create_app(&store, "web").await;
    store.upsert_worker("a", 4, 3, "1.0.0").await.unwrap();
    let group = create_group(&store, "web", 3, Some(1)).await;
    let first = store.claim_next("a", LEASE).await.unwrap().unwrap();
    assert_eq!(first.job.id, group.tasks[0].job_id);
    let fresh = Duration::from_secs(60);
    let (position, capacity) = store
        .queue_place(&group.tasks[1].job_id, fresh)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(position, 1);
    assert_eq!(
        (capacity.group_running, capacity.group_parallelism),
        (1, Some(1))
    );
    assert_eq!(
        jobs_core::wire::QueuePlace::new(position, capacity).waiting_for,
        "the group's parallelism: 1 of its tasks run, its parallelism is 1"
    );

    // The purge keeps every task while one has not ended long enough ago:
    // they share the group's uploads.
    store
        .finish(&first.fence, JobState::Succeeded, Some(0), None)
        .await
        .unwrap();
    let second = store.claim_next("a", LEASE).await.unwrap().unwrap();
    assert!(
        store
            .purge_ended_jobs(Duration::ZERO, 100)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .finish(&second.fence, JobState::Succeeded, Some(0), None)
        .await
        .unwrap();
    store.cancel_group(&group.id).await.unwrap();
    let purged = store.purge_ended_jobs(Duration::ZERO, 100).await.unwrap();
    assert_eq!(purged.len(), 3, "the whole group at once");
    assert!(matches!(
        store.get_group(&group.id).await,
        Err(StoreError::GroupNotFound(_))
    ));

    // An app goes with its groups.
    let kept = create_group(&store, "web", 2, None).await;
    store.cancel_group(&kept.id).await.unwrap();
    store.delete_app("web").await.unwrap();
    assert!(matches!(
        store.get_group(&kept.id).await,
        Err(StoreError::GroupNotFound(_))
    ));
}

async fn claim_batch_takes_several_heads_but_never_passes_a_cap(store: Store) {
    create_app(&store, "web").await;
    let jobs = create_jobs(&store, "web", 6).await;
    let batch = store.claim_batch("w1", LEASE, 4).await.unwrap();
    let ids: Vec<&str> = batch
        .iter()
        .map(|claimed| claimed.job.id.as_str())
        .collect();
    let first_four: Vec<&str> = jobs[..4].iter().map(|job| job.id.as_str()).collect();
    assert_eq!(ids, first_four, "the first four of the line, in order");
    for claimed in &batch {
        assert_eq!(claimed.job.state, JobState::Starting);
        assert_eq!(claimed.fence.worker_id, "w1");
    }
    let rest = store.claim_batch("w1", LEASE, 4).await.unwrap();
    assert_eq!(rest.len(), 2);
    assert!(store.claim_batch("w1", LEASE, 4).await.unwrap().is_empty());

    // Under a cap, a batch never passes it, whatever it asks for.
    create_app_with(&store, "capped", Some(2), 1).await;
    create_jobs(&store, "capped", 5).await;
    let mut claimed = 0;
    loop {
        let batch = store.claim_batch("w2", LEASE, 4).await.unwrap();
        if batch.is_empty() {
            break;
        }
        claimed += batch.len();
    }
    assert_eq!(claimed, 2);
    // Nor a group's parallelism.
    let group = create_group(&store, "web", 5, Some(2)).await;
    let mut tasks = 0;
    loop {
        let batch = store.claim_batch("w3", LEASE, 4).await.unwrap();
        if batch.is_empty() {
            break;
        }
        tasks += batch.len();
    }
    assert_eq!(tasks, 2);
    let running = store
        .get_group(&group.id)
        .await
        .unwrap()
        .tasks
        .iter()
        .filter(|task| task.state == JobState::Starting)
        .count();
    assert_eq!(running, 2);
}

/// An app's storage use: each stored chunk's bytes once (a replayed batch
/// does not count twice), collected artifacts and uploads; another app's
/// use is its own.
async fn apps_storage_counts_logs_once_artifacts_and_uploads(store: Store) {
    create_app(&store, "web").await;
    create_app(&store, "other").await;
    assert_eq!(store.storage_used("web").await.unwrap(), 0);
    let (queued, _) = store.create_job("web", &with_uploads(&[])).await.unwrap();
    let claimed = claim(&store, &queued.id, "w1", LEASE).await;
    let chunks = [chunk(1, b"0123456789"), chunk(2, b"abc")];
    store.append_logs(&queued.id, &chunks).await.unwrap();
    store.append_logs(&queued.id, &chunks).await.unwrap();
    assert_eq!(store.storage_used("web").await.unwrap(), 13);
    let artifacts = two_artifacts();
    assert!(
        store
            .record_artifacts(&claimed.fence, &artifacts)
            .await
            .unwrap()
    );
    store
        .create_upload("web", &upload("data.csv", 100))
        .await
        .unwrap();
    store
        .create_upload("other", &upload("x.csv", 7))
        .await
        .unwrap();
    assert_eq!(store.storage_used("web").await.unwrap(), 13 + 2048 + 100);
    assert_eq!(store.storage_used("other").await.unwrap(), 7);
    assert_eq!(store.storage_quota("web").await.unwrap(), None);
    assert!(matches!(
        store.storage_quota("nope").await,
        Err(StoreError::AppNotFound(_))
    ));
}

/// `max_output_bytes` and `storage_quota_bytes`: set, kept by an update
/// that does not name them, reset by `null`; the claim and a restarted
/// worker's held jobs carry the output cap.
async fn apps_storage_limits_round_trip_and_reach_the_claim(store: Store) {
    let app = create_app(&store, "web").await;
    assert_eq!(
        app.max_output_bytes,
        jobs_core::storage::DEFAULT_MAX_OUTPUT_BYTES
    );
    assert_eq!(app.storage_quota_bytes, None);
    let set = AppUpdate {
        max_output_bytes: Some(Some(4096)),
        storage_quota_bytes: Some(Some(1 << 20)),
        ..Default::default()
    };
    let app = store.update_app("web", &set).await.unwrap();
    assert_eq!(
        (app.max_output_bytes, app.storage_quota_bytes),
        (4096, Some(1 << 20))
    );
    let other = AppUpdate {
        weight: Some(2),
        ..Default::default()
    };
    let app = store.update_app("web", &other).await.unwrap();
    assert_eq!(
        (app.max_output_bytes, app.storage_quota_bytes),
        (4096, Some(1 << 20))
    );
    assert_eq!(store.storage_quota("web").await.unwrap(), Some(1 << 20));
    let (queued, _) = store.create_job("web", &with_uploads(&[])).await.unwrap();
    let claimed = claim(&store, &queued.id, "w1", LEASE).await;
    assert_eq!(claimed.max_output, 4096);
    let held = store.jobs_held_by("w1").await.unwrap();
    assert_eq!(held[0].max_output, 4096);
    let reset = AppUpdate {
        max_output_bytes: Some(None),
        storage_quota_bytes: Some(None),
        ..Default::default()
    };
    let app = store.update_app("web", &reset).await.unwrap();
    assert_eq!(
        (app.max_output_bytes, app.storage_quota_bytes),
        (jobs_core::storage::DEFAULT_MAX_OUTPUT_BYTES, None)
    );
}

/// One collected artifact of 2048 bytes, and one missing.
fn two_artifacts() -> Vec<Artifact> {
    vec![
        Artifact {
            path: "/out/a".into(),
            size: Some(2048),
            error: None,
        },
        Artifact {
            path: "/out/b".into(),
            size: None,
            error: Some("no such file or directory".into()),
        },
    ]
}
