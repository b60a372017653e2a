//! Expected outputs, and comparisons that stay readable when megabytes
//! differ.

/// `"{prefix}1\n{prefix}2\n…{prefix}{count}\n"`, what the numbered-lines
/// shell loop of [`numbered_lines_script`] prints.
pub fn numbered_lines(prefix: &str, count: usize) -> Vec<u8> {
    (1..=count)
        .flat_map(|n| format!("{prefix}{n}\n").into_bytes())
        .collect()
}

/// A busybox `sh` script that prints `{prefix}N` for N in 1..=count, one
/// line at a time, pausing `pause` (as given to `sleep`) after each line.
pub fn numbered_lines_script(prefix: &str, count: usize, pause: &str) -> String {
    format!(
        "i=1; while [ $i -le {count} ]; do echo \"{prefix}$i\"; i=$((i+1)); sleep {pause}; done"
    )
}

/// The bytes of `seq 1 count | tr '05' '\377\000'`: mostly ASCII, with
/// 0xFF and NUL bytes that are not UTF-8.
pub fn binary_sequence(count: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(count * 7);
    for n in 1..=count {
        bytes.extend(n.to_string().bytes().map(|b| match b {
            b'0' => 0xFF,
            b'5' => 0x00,
            other => other,
        }));
        bytes.push(b'\n');
    }
    bytes
}

/// The busybox `sh` command that prints [`binary_sequence`]`(count)`.
pub fn binary_sequence_command(count: usize) -> String {
    format!("seq 1 {count} | tr '05' '\\377\\000'")
}

/// Asserts that `actual` equals `expected` byte for byte. On a mismatch it
/// reports the lengths and the first differing offset with a little context
/// instead of printing both buffers.
#[track_caller]
pub fn assert_bytes_eq(actual: &[u8], expected: &[u8], what: &str) {
    if actual == expected {
        return;
    }
    let first_difference = actual
        .iter()
        .zip(expected)
        .position(|(a, e)| a != e)
        .unwrap_or(actual.len().min(expected.len()));
    let window = |bytes: &[u8]| {
        let start = first_difference.saturating_sub(40);
        let end = (first_difference + 40).min(bytes.len());
        format!("{:?}", String::from_utf8_lossy(&bytes[start.min(end)..end]))
    };
    panic!(
        "{what}: got {} bytes, expected {} bytes; first difference at offset {first_difference}\n  \
         got      …{}…\n  expected …{}…",
        actual.len(),
        expected.len(),
        window(actual),
        window(expected),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_lines_are_newline_terminated() {
        assert_eq!(numbered_lines("line ", 3), b"line 1\nline 2\nline 3\n");
    }

    #[test]
    fn binary_sequence_maps_digits_like_tr() {
        let bytes = binary_sequence(15);
        assert_eq!(&bytes[..4], b"1\n2\n");
        // "5" becomes NUL, "10" becomes "1\xff", "15" becomes "1\0".
        assert_eq!(&bytes[8..10], b"\0\n");
        assert!(bytes.windows(3).any(|w| w == b"1\xff\n"));
        assert!(bytes.ends_with(b"1\0\n"));
    }
}
