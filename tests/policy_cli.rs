//! `tron-signer policy check | explain` on the real binary against the careless-operator
//! mistakes of issue 11: a wrong `decimals` for USDT, a token contract of another network, a
//! policy without a network, a clock skew as long as a window; and `explain` showing what the
//! signer compares.

mod common;

use common::*;

/// A valid test policy.
fn policy() -> String {
    PolicyText::new("cli policy")
        .key(
            Key::new(KEY1, "hot", &["TRX", "USDT"])
                .window("TRX", "1h", "100")
                .window("USDT", "24h", "10000")
                .destination(
                    Destination::new(dest(0xa1), "exchange", &["USDT"]).per_tx_max("USDT", "500"),
                ),
        )
        .text()
}

/// [`policy`] with `from` replaced by `to` (`from` must occur once).
fn policy_with(from: &str, to: &str) -> String {
    let text = policy();
    assert_eq!(text.matches(from).count(), 1, "{from:?} in:\n{text}");
    text.replacen(from, to, 1)
}

/// Runs `policy check` on `text`; exit code and stderr.
fn check(text: &str) -> (Option<i32>, String) {
    let s = Setup::bare(text);
    let out = s.run(&["policy", "check", path_str(&s.policy)]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// 1-based line and column where `needle` starts in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let at = text.find(needle).expect("needle in text");
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[test]
fn usdt_with_18_decimals_is_refused_with_its_code_and_position() {
    let text = policy_with("decimals = 6", "decimals = 18");
    let (rc, err) = check(&text);
    assert_eq!(rc, Some(1), "{err}");
    let (line, col) = position(&text, "decimals = 18");
    let col = col + "decimals = ".len();
    let expected = format!("policy.toml:{line}:{col}: ");
    let problem = err
        .lines()
        .find(|l| l.contains(&expected))
        .unwrap_or_else(|| panic!("no problem at {expected} in:\n{err}"));
    assert!(
        problem.ends_with("[known_token_decimals]") && problem.contains("6 decimals, not 18"),
        "{problem}"
    );
    assert!(err.contains("1 problem(s)"), "{err}");
}

#[test]
fn mainnet_usdt_under_a_nile_policy_is_refused() {
    let text = policy_with(NILE_USDT, "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t");
    let (rc, err) = check(&text);
    assert_eq!(rc, Some(1), "{err}");
    let (line, col) = position(&text, "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t");
    assert!(
        err.contains(&format!("policy.toml:{line}:{}: ", col - 1))
            && err.contains("[token_network]"),
        "{err}"
    );
}

#[test]
fn clock_skew_as_long_as_a_window_is_refused() {
    // The reproduction: a 1h skew and a 30 min window.
    let text = policy_with("clock_skew = \"60s\"", "clock_skew = \"1h\"").replacen(
        "window = \"1h\"",
        "window = \"30m\"",
        1,
    );
    let (rc, err) = check(&text);
    assert_eq!(rc, Some(1), "{err}");
    let (line, col) = position(&text, "\"1h\"");
    assert!(
        err.contains(&format!("policy.toml:{line}:{col}: "))
            && err.contains("[clock_skew_too_long]")
            && err.contains("30m"),
        "{err}"
    );
}

#[test]
fn a_policy_without_network_is_refused() {
    let text = policy_with("network = \"nile\"\n", "");
    let (rc, err) = check(&text);
    assert_eq!(rc, Some(1), "{err}");
    assert!(
        err.contains("network") && err.contains("[missing_field]"),
        "{err}"
    );
}

#[test]
fn explain_shows_token_and_base_units() {
    let s = Setup::bare(&policy());
    let out = s.run(&["policy", "explain", path_str(&s.policy)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Network: nile",
        "USDT: at most 500 (500000000 base units) per transaction",
        "at most 10000 (10000000000 base units) in any 24h",
        "at most 100 (100000000 sun) in any 1h",
        "at most 50 TRX (50000000 sun) per transaction",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}
