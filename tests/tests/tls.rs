//! Transport: the API serves HTTPS when given a certificate and key, and the
//! CLI verifies the certificate: it trusts a private CA only when told to
//! with `--ca-cert` / `JOBS_CA_CERT`, and has no way to skip the check;
//! an interactive run works over HTTPS, the worker trusting the CA too.
//!
//! The CA and the server certificate (for 127.0.0.1 and localhost) are made
//! at test time with rcgen, so no openssl command is needed.
//!
//! Synchronisation: each CLI call runs to its end (bounded); the API's
//! start is awaited through its `listening on` line.

use std::path::{Path, PathBuf};
use std::process::Command;

use jobs_e2e::cli::{DEFAULT_CLI_TIMEOUT, run_bounded};
use jobs_e2e::{TestEnv, binaries};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// PEM files of one test: a CA, a server certificate it signed, the
/// server's key, and the key of an unrelated certificate.
struct Certificates {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    other_key: PathBuf,
}

impl Certificates {
    fn make(test: &str) -> Certificates {
        let dir = binaries::target_dir()
            .join("e2e-tls")
            .join(format!("{test}-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("create the certificate directory");

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "jobs e2e test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("self-sign the CA");

        // An IP address among the names becomes an IP SAN, which is what a
        // client checks for https://127.0.0.1:PORT.
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params");
        server_params
            .distinguished_name
            .push(DnType::CommonName, "jobs-api e2e");
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = server_params
            .signed_by(&server_key, &ca)
            .expect("sign the server certificate");

        let files = Certificates {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            other_key: dir.join("other.key"),
            dir,
        };
        write(&files.ca, &ca.pem());
        write(&files.cert, &server_cert.pem());
        write(&files.key, &server_key.serialize_pem());
        write(
            &files.other_key,
            &KeyPair::generate().expect("other key").serialize_pem(),
        );
        files
    }

    fn path(path: &Path) -> &str {
        path.to_str().expect("the target directory is UTF-8")
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents)
        .unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
}

/// Starts a system whose API serves HTTPS; the CLI trusts the test CA
/// through `JOBS_CA_CERT` (needed to create the app `demo`).
fn start_tls(certificates: &Certificates) -> TestEnv {
    let cert = Certificates::path(&certificates.cert);
    let key = Certificates::path(&certificates.key);
    let ca = Certificates::path(&certificates.ca);
    TestEnv::start_with_api_env(
        1,
        &[("JOBS_TLS_CERT", cert), ("JOBS_TLS_KEY", key)],
        &[("JOBS_CA_CERT", ca)],
    )
}

#[test]
fn the_cli_runs_jobs_over_https_and_verifies_the_certificate() {
    let certificates = Certificates::make("https");
    let mut env = start_tls(&certificates);
    let url = env.api_url().to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    // --ca-cert on the command line, not the environment.
    let mut with_flag = env.jobs_command(&[
        "--ca-cert",
        Certificates::path(&certificates.ca),
        "run",
        "--",
        "sh",
        "-c",
        "echo hi; exit 3",
    ]);
    with_flag.env_remove("JOBS_CA_CERT");
    run_bounded(with_flag, None, DEFAULT_CLI_TIMEOUT)
        .assert_code(3)
        .assert_stdout(b"hi\n");

    let before = env.db_count_jobs();
    // Without the CA, the certificate is not trusted: the CLI refuses to
    // talk, sends nothing (so no token leaves), and says why.
    let mut untrusting = env.jobs_command(&["run", "--", "echo", "never"]);
    untrusting.env_remove("JOBS_CA_CERT");
    run_bounded(untrusting, None, DEFAULT_CLI_TIMEOUT)
        .assert_cli_error(125, &format!("jobs: cannot reach the API at {url}: "))
        .assert_stderr_contains("certificate")
        .assert_stderr_contains("--ca-cert");

    // Plain HTTP to the HTTPS port gets no answer, not a silent downgrade.
    let plain = url.replacen("https://", "http://", 1);
    let mut over_http = env.jobs_command(&["list"]);
    over_http.env("JOBS_API_URL", &plain);
    run_bounded(over_http, None, DEFAULT_CLI_TIMEOUT)
        .assert_cli_error(125, &format!("jobs: cannot reach the API at {plain}: "));

    // A CA file that is not one is a usage error naming the option.
    let mut bad_ca = env.jobs_command(&["list"]);
    bad_ca.env("JOBS_CA_CERT", Certificates::path(&certificates.key));
    run_bounded(bad_ca, None, DEFAULT_CLI_TIMEOUT).assert_usage_error("--ca-cert");

    assert_eq!(env.db_count_jobs(), before, "a refused run stored a job");
    env.finish();
}

#[test]
fn an_interactive_run_works_over_https_both_ways() {
    let certificates = Certificates::make("https-attach");
    let mut env = start_tls(&certificates);
    // The worker dials back to the API's https:// URL: it trusts the CA too.
    env.terminate_worker(std::time::Duration::from_secs(30));
    env.restart_worker_with(&[("JOBS_CA_CERT", Certificates::path(&certificates.ca))]);
    let output = run_bounded(
        env.jobs_command(&["run", "-i", "--", "sh", "-c", "cat; echo err >&2; exit 6"]),
        Some(b"over tls\n"),
        DEFAULT_CLI_TIMEOUT,
    );
    output.assert_code(6).assert_stdout(b"over tls\n");
    assert_eq!(output.stderr_text(), "err\n", "{output:?}");
    env.finish();
}

#[test]
fn a_worker_that_cannot_trust_the_api_stops_the_run_after_its_grace_period() {
    let certificates = Certificates::make("https-untrusted-worker");
    let mut env = start_tls(&certificates);
    // No JOBS_CA_CERT for the worker: its dial-back fails verification.
    env.terminate_worker(std::time::Duration::from_secs(30));
    env.restart_worker_with(&[("JOBS_ATTACH_GRACE", "2s")]);
    let output = run_bounded(
        env.jobs_command(&["run", "-i", "--", "sleep", "300"]),
        Some(b""),
        DEFAULT_CLI_TIMEOUT,
    );
    output.assert_cli_error(
        125,
        "the worker could not reach the API of this interactive run",
    );
    let job = env.db_job(&env.db_last_job_id()).expect("the job row");
    assert_eq!(job.state, "lost", "{job:?}");
    env.finish();
}

/// Runs `jobs-api` with `env` (and a database it never reaches: the TLS
/// settings are checked first) and returns its exit code and stderr.
fn api_start_failure(env: &[(&str, &str)]) -> (i32, String) {
    let mut command = Command::new(binaries::jobs_api());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("JOBS_") {
            command.env_remove(name);
        }
    }
    command
        .env("JOBS_LISTEN", "127.0.0.1:0")
        .env("JOBS_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("JOBS_ADMIN_TOKEN", "e2e-admin-token-0123456789")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied());
    let output = run_bounded(command, None, DEFAULT_CLI_TIMEOUT);
    assert!(
        output.stdout.is_empty(),
        "the API must not say it listens: {output:?}"
    );
    (output.code(), output.stderr_text())
}

#[test]
fn the_api_refuses_to_start_with_incomplete_or_bad_tls_files() {
    let certificates = Certificates::make("bad-files");
    let cert = Certificates::path(&certificates.cert);
    let key = Certificates::path(&certificates.key);

    // One without the other: a configuration error naming both.
    for half in [("JOBS_TLS_CERT", cert), ("JOBS_TLS_KEY", key)] {
        let (code, stderr) = api_start_failure(&[half]);
        assert_eq!(code, 2, "{stderr}");
        for named in ["--tls-cert", "--tls-key"] {
            assert!(stderr.contains(named), "names {named}: {stderr}");
        }
    }

    let missing = certificates.dir.join("missing.pem");
    let missing = Certificates::path(&missing);
    let other_key = Certificates::path(&certificates.other_key);
    let cases = [
        // (cert, key, the file the error must name)
        (missing, key, missing),
        (cert, missing, missing),
        // A key is not a certificate.
        (key, key, key),
        // The key of another certificate.
        (cert, other_key, other_key),
    ];
    for (cert_file, key_file, named) in cases {
        let (code, stderr) =
            api_start_failure(&[("JOBS_TLS_CERT", cert_file), ("JOBS_TLS_KEY", key_file)]);
        assert_eq!(code, 1, "cert {cert_file}, key {key_file}: {stderr}");
        assert!(
            stderr.contains(named) && stderr.contains("TLS"),
            "cert {cert_file}, key {key_file}: the error names {named}: {stderr}"
        );
    }
}
