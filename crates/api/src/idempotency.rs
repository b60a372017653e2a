//! Idempotency keys: a repeated `POST /v1/apps/{app}/jobs` with the same
//! `idempotency_key` returns the job the key made, however the requests
//! race (the store's unique key decides). The key only stands for the
//! request it came with: the same key with another request is a 409 that
//! names it, and keys expire after `JOBS_IDEMPOTENCY_TTL` (24 h by
//! default), after which the key makes a new job.

use std::time::Duration;

use jobs_core::wire::{Job, JobCreate};

/// How long a key names its job unless configured.
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Whether `create` asks for what `job` is. Fields the request leaves to
/// the app's defaults (size, timeout) match whatever the job got. The
/// queue timeout and the priority say how to wait, not what to run: they
/// are not compared. Uploads
/// match by content: a retried `jobs run -f` uploads the same file again
/// under a new id.
pub fn same_request(job: &Job, create: &JobCreate) -> bool {
    let mut wanted: Vec<&str> = create.uploads.iter().map(|u| u.sha256.as_str()).collect();
    let mut taken: Vec<&str> = job.uploads.iter().map(|u| u.sha256.as_str()).collect();
    wanted.sort_unstable();
    taken.sort_unstable();
    job.command == create.command
        && job.env == create.env
        && create.size.is_none_or(|size| size == job.size)
        && create
            .timeout_seconds
            .is_none_or(|timeout| timeout == job.timeout_seconds)
        && job.interactive.map(|i| i.tty) == create.interactive.map(|i| i.tty)
        && job.artifact_paths == create.artifacts
        && wanted == taken
}

/// The 409's message.
pub fn conflict_message(key: &str, job: &Job) -> String {
    format!(
        "idempotency key {key:?} was already used for another request (job {}): \
         repeat it only with the same command, env, size, timeout, files and \
         artifacts, or use a new key",
        job.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobs_core::Size;
    use jobs_core::wire::{Interactive, UploadRef};

    fn job() -> Job {
        serde_json::from_value(serde_json::json!({
            "id": "j1", "app": "web", "command": ["echo", "hi"], "env": {"A": "1"},
            "size": "M", "timeout_seconds": 600, "state": "queued", "attempt": 0,
            "exit_code": null, "reason": null, "cancel_requested": false,
            "worker_id": null, "created_at": "2026-01-01T00:00:00Z",
            "started_at": null, "finished_at": null,
            "uploads": [{"id": "u1", "name": "a.csv", "size": 3, "sha256": "abc"}],
            "artifact_paths": ["/tmp/out"], "artifacts": []
        }))
        .expect("a job")
    }

    fn create() -> JobCreate {
        JobCreate {
            command: vec!["echo".into(), "hi".into()],
            env: [("A".to_owned(), "1".to_owned())].into(),
            size: None,
            timeout_seconds: None,
            idempotency_key: Some("k".into()),
            interactive: None,
            uploads: vec![UploadRef {
                id: "u2-a-new-upload".into(),
                sha256: "abc".into(),
            }],
            artifacts: vec!["/tmp/out".into()],
            queue_timeout_seconds: None,
            priority: None,
        }
    }

    #[test]
    fn the_same_request_matches_with_defaults_and_reuploaded_files() {
        assert!(same_request(&job(), &create()));
        let explicit = JobCreate {
            size: Some(Size::M),
            timeout_seconds: Some(600),
            ..create()
        };
        assert!(same_request(&job(), &explicit));
    }

    #[test]
    fn any_other_request_does_not_match() {
        let changes: Vec<JobCreate> = vec![
            JobCreate {
                command: vec!["echo".into(), "bye".into()],
                ..create()
            },
            JobCreate {
                env: Default::default(),
                ..create()
            },
            JobCreate {
                size: Some(Size::L),
                ..create()
            },
            JobCreate {
                timeout_seconds: Some(5),
                ..create()
            },
            JobCreate {
                interactive: Some(Interactive { tty: false }),
                ..create()
            },
            JobCreate {
                artifacts: vec![],
                ..create()
            },
            JobCreate {
                uploads: vec![],
                ..create()
            },
        ];
        for change in changes {
            assert!(!same_request(&job(), &change), "{change:?}");
        }
    }

    #[test]
    fn the_conflict_names_the_key_and_the_job() {
        let message = conflict_message("nightly-2026", &job());
        assert!(message.contains("\"nightly-2026\""), "{message}");
        assert!(message.contains("job j1"), "{message}");
    }
}
