//! What characters a text field may hold.
//!
//! A single-line field (an idempotency key, a token's description, an
//! image reference, an artifact path) refuses every control character (C0,
//! DEL and C1) and Unicode's bidirectional formatting characters:
//! PostgreSQL's `text` refuses NUL outright, a newline or an escape
//! sequence forges lines in logs and terminals, and a bidi override shows
//! a name other than the one stored ("Trojan Source", CVE-2021-42574).
//!
//! Command arguments and env values are the program's own data, where
//! newlines and tabs are normal (a script, a PEM key): they refuse only NUL,
//! which no argv or environment can carry.

use crate::InvalidInput;

/// Whether `c` reorders how the text around it is displayed.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Whether a single-line field refuses `c`.
pub fn is_forbidden_in_line(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// Checks a single-line text field; `what` names it in the message, as in
/// `idempotency key contains the control character U+0000: …`.
pub fn validate_line(field: &str, what: &str, text: &str) -> Result<(), InvalidInput> {
    match text.chars().find(|c| is_forbidden_in_line(*c)) {
        None => Ok(()),
        Some(c) => Err(InvalidInput::new(field, forbidden_message(what, c))),
    }
}

/// `what contains the control character U+0000: …`.
pub fn forbidden_message(what: &str, c: char) -> String {
    format!(
        "{what} contains {}: only printable characters on one line are allowed",
        describe_forbidden(c)
    )
}

/// `the control character U+0000`, or `the bidirectional formatting
/// character U+202E`.
pub fn describe_forbidden(c: char) -> String {
    let kind = if is_bidi_control(c) {
        "the bidirectional formatting character"
    } else {
        "the control character"
    };
    format!("{kind} U+{:04X}", u32::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_of_any_script_passes() {
        for text in [
            "deploy 2026-12-08",
            "déploiement",
            "デプロイ",
            "a b\u{00A0}c",
            "",
        ] {
            assert!(validate_line("f", "f", text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn control_and_bidi_characters_are_named() {
        for (text, code) in [
            ("a\0b", "U+0000"),
            ("a\nb", "U+000A"),
            ("\u{1b}[31m", "U+001B"),
            ("a\u{7f}", "U+007F"),
            ("a\u{85}", "U+0085"),
            ("abc\u{202E}gpj.exe", "U+202E"),
            ("\u{2066}x", "U+2066"),
        ] {
            let error = validate_line("description", "the description", text).unwrap_err();
            assert_eq!(error.field, "description");
            assert!(error.message.contains(code), "{text:?}: {}", error.message);
        }
        let bidi = validate_line("f", "f", "\u{202E}").unwrap_err();
        assert!(bidi.message.contains("bidirectional"), "{}", bidi.message);
    }
}
