//! The token of `jobs dev`: made once per data directory, kept in a file
//! only its user can read, and picked up by the CLI when no token is given.
//!
//! The CLI sends it only to a loopback address (`127.0.0.0/8`, `::1`,
//! `localhost`): a user who points `JOBS_API_URL` at a shared server and
//! forgets `JOBS_TOKEN` must not hand their local token to that server.

use std::io::{self, Read};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;
use reqwest::Url;

use crate::dev_data_dir::{self, write_atomically};

/// The token's file name in the data directory.
pub const TOKEN_FILE: &str = "token";
/// 256 bits of randomness.
const TOKEN_RANDOM_BYTES: usize = 32;
/// Makes the token recognisable where it turns up (a shell history, a
/// secret scanner).
const TOKEN_PREFIX: &str = "jobs_dev_";
/// The API's minimum admin token length; a shorter file is not ours.
const MIN_TOKEN_LEN: usize = 16;

/// How the token came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Made now, in a fresh data dir.
    Created,
    /// Read from the file a previous start wrote.
    Reused,
    /// Made now because the file was readable by other users, who may have
    /// read it.
    ReplacedExposed,
}

/// Reads the token of the data dir, or makes one: `file` is written with
/// mode 0600 from its creation on.
pub fn load_or_create(file: &Path) -> anyhow::Result<(String, Origin)> {
    let origin = match std::fs::metadata(file) {
        Ok(metadata) if metadata.permissions().mode() & 0o077 != 0 => Origin::ReplacedExposed,
        Ok(_) => match read(file) {
            Some(token) => return Ok((token, Origin::Reused)),
            // Empty or truncated: not a token anyone can be using.
            None => Origin::Created,
        },
        Err(err) if err.kind() == io::ErrorKind::NotFound => Origin::Created,
        Err(err) => return Err(err).with_context(|| format!("reading {}", file.display())),
    };
    let token = format!("{TOKEN_PREFIX}{}", random_hex(TOKEN_RANDOM_BYTES)?);
    write_atomically(file, format!("{token}\n").as_bytes(), 0o600)
        .with_context(|| format!("writing the token file {}", file.display()))?;
    Ok((token, origin))
}

/// The token in `file`, if it holds one.
pub fn read(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let token = text.trim();
    (token.len() >= MIN_TOKEN_LEN).then(|| token.to_owned())
}

/// The dev token for a CLI talking to `api_url`, when that address is
/// loopback and the data dir has a token.
pub fn for_api_url(api_url: &str) -> Option<String> {
    if !is_loopback(api_url) {
        return None;
    }
    read(&dev_data_dir::cli_dir()?.join(TOKEN_FILE))
}

fn is_loopback(api_url: &str) -> bool {
    let Ok(url) = Url::parse(api_url) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    // An IPv6 host comes back in brackets, as in the URL.
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// `bytes` random bytes from the kernel, in hex.
pub(crate) fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut random = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut random))
        .context("reading /dev/urandom")?;
    Ok(random.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "jobs-cli-token-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(TOKEN_FILE)
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_token_is_made_private_once_and_reused() {
        let file = temp_file("reuse");
        let (token, origin) = load_or_create(&file).unwrap();
        assert_eq!(origin, Origin::Created);
        assert!(token.starts_with(TOKEN_PREFIX));
        assert_eq!(token.len(), TOKEN_PREFIX.len() + 2 * TOKEN_RANDOM_BYTES);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(
            load_or_create(&file).unwrap(),
            (token.clone(), Origin::Reused)
        );
        assert_eq!(read(&file), Some(token));
        std::fs::remove_dir_all(file.parent().unwrap()).unwrap();
    }

    #[test]
    fn an_exposed_token_is_replaced() {
        let file = temp_file("exposed");
        let (token, _) = load_or_create(&file).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (replaced, origin) = load_or_create(&file).unwrap();
        assert_eq!(origin, Origin::ReplacedExposed);
        assert_ne!(replaced, token);
        assert_eq!(mode(&file), 0o600);
        std::fs::remove_dir_all(file.parent().unwrap()).unwrap();
    }

    #[test]
    fn only_loopback_addresses_get_the_dev_token() {
        for url in [
            "http://127.0.0.1:8420",
            "http://127.1.2.3",
            "http://localhost:1",
            "http://[::1]:8420",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "https://jobs.example.com",
            "http://10.0.0.1:8420",
            "http://0.0.0.0:8420",
            "not a url",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}
