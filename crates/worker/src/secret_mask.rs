//! Masks an app's secret config values in a job's output before it is
//! stored, after GitHub Actions' secret masking: exact byte occurrences are
//! replaced by [`MASK`], even when an occurrence is split across reads;
//! values shorter than [`MIN_SECRET_BYTES`] are not masked (masking `1` or
//! `yes` would garble ordinary output and hide nothing).
//!
//! [`SecretMasker`] is pure: bytes in, masked bytes out. It holds back only
//! a tail that could still be the start of a secret (fewer bytes than the
//! longest secret), so memory stays bounded and ordinary output is not
//! delayed. Its output for any split of an input equals its output for the
//! whole input at once.

/// What replaces each occurrence of a secret.
pub const MASK: &[u8] = b"***";
/// Secrets shorter than this many bytes are not masked.
pub const MIN_SECRET_BYTES: usize = 4;

/// The secrets to mask, longest first, shared by a job's streams.
#[derive(Clone, Default)]
pub struct Secrets {
    /// Longest first, so that of two secrets matching at the same place
    /// the longer one wins (a prefix secret never leaves the rest visible).
    values: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Secrets {
    // Never print the values themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} values)", self.values.len())
    }
}

impl Secrets {
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut values: Vec<Vec<u8>> = values
            .into_iter()
            .map(|v| v.as_ref().to_vec())
            .filter(|v| v.len() >= MIN_SECRET_BYTES)
            .collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Self { values }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// How many values are masked (those long enough).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// What happens at the start of `rest`: `Some(len)` when a secret of
    /// that length matches, `None` when none matches, and `Err(())` when
    /// it cannot be decided yet because `rest` ends inside a possible match
    /// of a secret at least as long as any full match.
    fn match_at(&self, rest: &[u8], at_end: bool) -> Result<Option<usize>, ()> {
        for secret in &self.values {
            if rest.len() >= secret.len() {
                if rest.starts_with(secret) {
                    return Ok(Some(secret.len()));
                }
            } else if !at_end && secret.starts_with(rest) {
                // A longer secret may still match once more bytes come.
                return Err(());
            }
        }
        Ok(None)
    }
}

/// Masks one output stream.
#[derive(Debug, Default)]
pub struct SecretMasker {
    secrets: Secrets,
    /// Bytes that could still begin a secret; always shorter than the
    /// longest secret after [`SecretMasker::push`].
    pending: Vec<u8>,
}

impl SecretMasker {
    pub fn new(secrets: Secrets) -> Self {
        Self {
            secrets,
            pending: Vec::new(),
        }
    }

    /// Whether bytes are held back, waiting for more input.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// How many raw bytes are held back.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Adds bytes; returns what can be decided now, masked.
    /// Whether there is any secret to mask.
    pub fn masks_anything(&self) -> bool {
        !self.secrets.is_empty()
    }

    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        if self.secrets.is_empty() {
            return bytes.to_vec();
        }
        self.pending.extend_from_slice(bytes);
        self.drain(false)
    }

    /// Ends the stream: returns every held byte, masked.
    pub fn finish(&mut self) -> Vec<u8> {
        self.drain(true)
    }

    fn drain(&mut self, at_end: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pending.len());
        let mut at = 0;
        while at < self.pending.len() {
            match self.secrets.match_at(&self.pending[at..], at_end) {
                Ok(Some(len)) => {
                    out.extend_from_slice(MASK);
                    at += len;
                }
                Ok(None) => {
                    out.push(self.pending[at]);
                    at += 1;
                }
                Err(()) => break,
            }
        }
        self.pending.drain(..at);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_all(secrets: &[&str], input: &[u8]) -> Vec<u8> {
        let mut masker = SecretMasker::new(Secrets::new(secrets));
        let mut out = masker.push(input);
        out.extend(masker.finish());
        out
    }

    fn mask_split(secrets: &[&str], parts: &[&[u8]]) -> Vec<u8> {
        let mut masker = SecretMasker::new(Secrets::new(secrets));
        let mut out = Vec::new();
        for part in parts {
            out.extend(masker.push(part));
        }
        out.extend(masker.finish());
        out
    }

    #[test]
    fn a_secret_inside_one_chunk_is_masked() {
        assert_eq!(
            mask_all(&["hunter2"], b"pw=hunter2\nbye"),
            b"pw=***\nbye".to_vec()
        );
        assert_eq!(
            mask_all(&["hunter2"], b"hunter2hunter2"),
            b"******".to_vec()
        );
    }

    #[test]
    fn a_secret_split_across_two_pushes_is_masked_at_every_split_point() {
        let input = b"before hunter2-very-secret after";
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(
                mask_split(&["hunter2-very-secret"], &[a, b]),
                b"before *** after".to_vec(),
                "split at {split}"
            );
        }
    }

    #[test]
    fn byte_by_byte_input_is_masked() {
        let input = b"xhunter2yhunter2";
        let parts: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(mask_split(&["hunter2"], &parts), b"x***y***".to_vec());
    }

    #[test]
    fn several_secrets_are_masked() {
        assert_eq!(
            mask_all(&["alpha-1", "beta-22"], b"alpha-1 and beta-22 and gamma"),
            b"*** and *** and gamma".to_vec()
        );
    }

    #[test]
    fn the_longest_of_overlapping_secrets_wins() {
        // "abcd" is a prefix of "abcdef": the whole longer one is masked.
        assert_eq!(mask_all(&["abcd", "abcdef"], b"abcdefg"), b"***g".to_vec());
        assert_eq!(mask_all(&["abcd", "abcdef"], b"abcdex"), b"***ex".to_vec());
        // Split right after the shorter secret: must wait for the longer.
        assert_eq!(
            mask_split(&["abcd", "abcdef"], &[b"abcd", b"ef!"]),
            b"***!".to_vec()
        );
    }

    #[test]
    fn binary_bytes_are_masked_and_kept() {
        let secret = [0xffu8, 0x00, 0xfe, 0x80, 0x01];
        let mut input = vec![0u8, 0xff];
        input.extend_from_slice(&secret);
        input.push(0x80);
        let mut masker = SecretMasker::new(Secrets::new([&secret[..]]));
        let mut out = masker.push(&input[..4]);
        out.extend(masker.push(&input[4..]));
        out.extend(masker.finish());
        assert_eq!(out, [&[0u8, 0xff][..], MASK, &[0x80][..]].concat());
    }

    #[test]
    fn no_secrets_is_the_identity_and_holds_nothing_back() {
        let mut masker = SecretMasker::new(Secrets::new(Vec::<&str>::new()));
        assert_eq!(
            masker.push(b"hunter2 \x00\xff"),
            b"hunter2 \x00\xff".to_vec()
        );
        assert!(!masker.has_pending());
        assert!(masker.finish().is_empty());
    }

    #[test]
    fn short_values_are_not_masked() {
        assert_eq!(mask_all(&["abc", ""], b"abc abc"), b"abc abc".to_vec());
    }

    #[test]
    fn only_a_possible_secret_start_is_held_back() {
        let mut masker = SecretMasker::new(Secrets::new(["hunter2"]));
        assert_eq!(masker.push(b"hello hun"), b"hello ".to_vec());
        assert!(masker.has_pending());
        assert_eq!(masker.push(b"gry"), b"hungry".to_vec());
        assert!(!masker.has_pending());
        assert_eq!(masker.push(b"hunt"), b"".to_vec());
        assert_eq!(masker.finish(), b"hunt".to_vec());
    }

    /// Every input over a small alphabet up to a length, every split into
    /// two or three parts: the output never holds a secret, and equals the
    /// output for the whole input at once.
    #[test]
    fn exhaustive_small_inputs_split_anywhere() {
        let secrets = ["abab", "abba", "bbbbb", "abbab"];
        let alphabet = [b'a', b'b', b'c'];
        for len in 0..=8usize {
            let total = alphabet.len().pow(len as u32);
            for n in 0..total {
                let mut input = Vec::with_capacity(len);
                let mut k = n;
                for _ in 0..len {
                    input.push(alphabet[k % alphabet.len()]);
                    k /= alphabet.len();
                }
                let whole = mask_all(&secrets, &input);
                for secret in secrets {
                    assert!(
                        !contains(&whole, secret.as_bytes()),
                        "{:?} → {:?}",
                        String::from_utf8_lossy(&input),
                        String::from_utf8_lossy(&whole)
                    );
                }
                for i in 0..=len {
                    for j in i..=len {
                        let parts = [&input[..i], &input[i..j], &input[j..]];
                        assert_eq!(mask_split(&secrets, &parts), whole);
                    }
                }
            }
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }
}
