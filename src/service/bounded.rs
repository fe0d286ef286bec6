//! Bounded echoes of caller input: a refusal message or audit record never carries more of
//! what was refused than a short prefix, its length and its SHA-256 (enough to match it
//! against the caller's own logs), so a huge field costs neither log space nor disk.

use sha2::{Digest, Sha256};

/// Characters of refused input shown verbatim.
pub const PREFIX_CHARS: usize = 32;

/// Longest refusal message, in bytes; a longer one is cut on a character boundary.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// `"abc…"` (at most [`PREFIX_CHARS`] characters, escaped) followed by the text's length.
pub fn preview(s: &str) -> String {
    let prefix: String = s.chars().take(PREFIX_CHARS).collect();
    if prefix.len() == s.len() {
        format!("{s:?}")
    } else {
        format!("{prefix:?}… ({} bytes)", s.len())
    }
}

/// What the audit record keeps of a refused field: never a value that could pass for a
/// valid one (it contains spaces, which no key or payout id may), always bounded.
pub fn refused_field(s: &str) -> String {
    let prefix: String = s.chars().take(PREFIX_CHARS).collect();
    format!(
        "refused: {} bytes, sha256 {}, starts {prefix:?}",
        s.len(),
        hex::encode(Sha256::digest(s.as_bytes()))
    )
}

/// `message`, cut to at most [`MAX_MESSAGE_BYTES`] on a character boundary.
pub fn cap_message(message: String) -> String {
    cap_message_to(message, MAX_MESSAGE_BYTES)
}

/// `message`, cut to at most `max` bytes on a character boundary.
pub fn cap_message_to(mut message: String, max: usize) -> String {
    if message.len() > max {
        let mut end = max - '…'.len_utf8();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_bounded() {
        assert_eq!(preview("short"), "\"short\"");
        let long = "é".repeat(100_000);
        let p = preview(&long);
        assert!(p.len() < 100, "{p}");
        assert!(p.ends_with("… (200000 bytes)"), "{p}");
        let r = refused_field(&long);
        assert!(
            r.len() < 200 && r.contains("200000 bytes") && r.contains(' '),
            "{r}"
        );
        assert_eq!(refused_field(&long), r, "deterministic");
    }

    #[test]
    fn messages_are_capped_on_a_char_boundary() {
        assert_eq!(cap_message("ok".into()), "ok");
        let m = cap_message("é".repeat(10_000));
        assert!(
            m.len() <= MAX_MESSAGE_BYTES && m.ends_with('…'),
            "{}",
            m.len()
        );
    }
}
