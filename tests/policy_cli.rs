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

/// `policy diff OLD NEW` on `policies/mainnet.toml` and edited copies (issue 14, item 4).
mod diff {
    use super::common::exporter::Exporter;
    use super::common::*;

    const MAINNET: &str = include_str!("../policies/mainnet.toml");

    /// Mainnet with each `(from, to)` replaced once.
    fn edited(edits: &[(&str, &str)]) -> String {
        let mut text = MAINNET.to_owned();
        for (from, to) in edits {
            assert_eq!(text.matches(from).count(), 1, "{from:?}");
            text = text.replacen(from, to, 1);
        }
        text
    }

    /// Runs `policy diff` (with `extra` flags) from mainnet to `new`: exit code and stdout.
    fn diff(new: &str, extra: &[&str]) -> (Option<i32>, String) {
        let s = Setup::bare(MAINNET);
        let new_path = s.dir.path().join("new.toml");
        std::fs::write(&new_path, new).unwrap();
        let mut args = vec!["policy", "diff", path_str(&s.policy), path_str(&new_path)];
        args.extend_from_slice(extra);
        let out = s.run(&args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    const HOT: &str = "key \"EXAMPLE payout hot key\" (TQVSgo3fKUrNwwzFTKWvXPFT3jqmu22Diu)";
    const EXCHANGE: &str =
        "destination \"EXAMPLE exchange deposit\" (TT8iRL8nRZRu4sueth1o3pKcnDpyC3ySKj)";

    /// A `[policy_admins]` section of `(name, seed)` administrators, `threshold` needed.
    fn admins(entries: &[(&str, u8)], threshold: usize) -> String {
        let lines: Vec<String> = entries
            .iter()
            .map(|(n, seed)| format!("  {{ name = \"{n}\", key = \"{}\" }},\n", admin_key(*seed)))
            .collect();
        format!(
            "\n[policy_admins]\nthreshold = {threshold}\nadmins = [\n{}]\n",
            lines.concat()
        )
    }

    /// A fixed Ed25519 public key line per seed (made once by ssh-keygen, cached).
    fn admin_key(seed: u8) -> String {
        use std::sync::OnceLock;
        static KEYS: OnceLock<Vec<String>> = OnceLock::new();
        KEYS.get_or_init(|| {
            (0..4)
                .map(|i| Exporter::new(&format!("admin {i}")).public_line)
                .collect()
        })[usize::from(seed)]
        .clone()
    }

    #[test]
    fn administrator_changes_are_named() {
        let old = format!("{MAINNET}{}", admins(&[("alice", 0), ("bob", 1)], 2));
        let s = Setup::bare(&old);
        let new = format!(
            "{MAINNET}{}",
            admins(&[("alice", 0), ("bob", 2), ("carol", 3)], 2)
        );
        let new_path = s.dir.path().join("new.toml");
        std::fs::write(&new_path, &new).unwrap();
        let out = s.run(&["policy", "diff", path_str(&s.policy), path_str(&new_path)]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains("policy administrator \"carol\""), "{said}");
        assert!(said.contains("policy administrator \"bob\""), "{said}");
        assert!(said.contains("2 of 2") && said.contains("2 of 3"), "{said}");
        assert!(!said.contains("\"alice\""), "{said}");
        // Dropping the section hands the choice back to the signer config.
        let (code, said) = diff(MAINNET, &[]);
        assert_eq!(code, Some(0), "{said}");
        std::fs::write(&new_path, MAINNET).unwrap();
        let out = s.run(&["policy", "diff", path_str(&s.policy), path_str(&new_path)]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("the signer config's"), "{said}");
    }

    #[test]
    fn reordered_but_equal_is_no_difference() {
        // Windows, approval rules and callers in another order, comments dropped.
        let reordered = edited(&[
            (
                "  { asset = \"TRX\",  window = \"1h\",  max = \"5000\" },\n  { asset = \"TRX\",  window = \"24h\", max = \"20000\" },",
                "  { asset = \"TRX\",  window = \"24h\", max = \"20000\" },\n  { asset = \"TRX\",  window = \"1h\",  max = \"5000\" },",
            ),
            (
                "above = \"10000\"\nrequire = { treasury = 2 }",
                "above = \"20000\"\nrequire = { risk = 1, treasury = 2 }",
            ),
            (
                "above = \"20000\"\nrequire = { treasury = 2, risk = 1 }",
                "above = \"10000\"\nrequire = { treasury = 2 }",
            ),
            ("network = \"mainnet\"        # the only network this policy signs for", "network = \"mainnet\""),
        ]);
        let (code, out) = diff(&reordered, &[]);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("no differences"), "{out}");
    }

    #[test]
    fn each_kind_of_change_is_named_with_both_values() {
        let changed = edited(&[
            (
                "per_tx_max = { USDT = \"10000\" }",
                "per_tx_max = { USDT = \"20000\" }",
            ),
            (
                "  { asset = \"USDT\", window = \"24h\", max = \"100000\" },\n]",
                "  { asset = \"USDT\", window = \"24h\", max = \"90000\" },\n]",
            ),
            ("max_expiration = \"5m\"", "max_expiration = \"10m\""),
            ("frozen = false", "frozen = true"),
            (
                "rpcs = [\"Sign\", \"Evaluate\", \"ListKeys\"]",
                "rpcs = [\"Sign\", \"Evaluate\"]",
            ),
            (
                "above = \"10000\"\nrequire = { treasury = 2 }",
                "above = \"15000\"\nrequire = { treasury = 2 }",
            ),
            (
                "name = \"EXAMPLE risk team dashboard\"",
                "name = \"EXAMPLE risk dashboard\"",
            ),
        ]);
        let (code, out) = diff(&changed, &[]);
        assert_eq!(code, Some(1), "{out}");
        for line in [
            format!("- raised 10000 → 20000 USDT per transaction for {EXCHANGE} of {HOT}"),
            format!("- lowered 100000 → 90000 USDT in any 24h for {HOT}"),
            format!("- raised 5m → 10m max expiration for {HOT}"),
            "- changed global freeze of the policy: off → on".to_owned(),
            "- changed RPCs of caller \"EXAMPLE payments backend\": Sign, Evaluate, ListKeys → Sign, Evaluate".to_owned(),
            "- removed approval rule: USDT above 10000 needs 2 of \"treasury\"".to_owned(),
            "- added approval rule: USDT above 15000 needs 2 of \"treasury\"".to_owned(),
            "- removed caller \"EXAMPLE risk team dashboard\"".to_owned(),
            "- added caller \"EXAMPLE risk dashboard\"".to_owned(),
        ] {
            assert!(out.contains(&line), "{line:?} missing from\n{out}");
        }
        // The retired key's window is unchanged: only the hot key's 24h USDT window moved.
        assert_eq!(out.matches("USDT in any 24h").count(), 1, "{out}");
    }

    #[test]
    fn keys_destinations_tokens_and_approvers_added_and_removed() {
        let cold = "  [[key.destination]]\n  address = \"TKrVe1tFhjgjMUAAAzmU5JBr2bgxQUUMAe\"   # EXAMPLE address\n  label = \"EXAMPLE cold wallet\"\n  assets = [\"TRX\", \"USDT\"]";
        let start = MAINNET.find(cold).expect("the cold wallet");
        let end = start + MAINNET[start..].find("]\n\n").expect("its end") + 2;
        let without_cold = format!("{}{}", &MAINNET[..start], &MAINNET[end..]);
        let dan = "[[approver]]\nname = \"EXAMPLE Dan (treasury)\"\ngroups = [\"treasury\"]\nkey = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL51WHfawnvDkLIbzegSTnDtLyXypztBX20IhV5RSw+B dan\"\n\n";
        let text = without_cold
            .replacen("[[approver]]", &format!("{dan}[[approver]]"), 1)
            .replacen(
            "[[token]]",
            "[[token]]\nsymbol = \"USDD\"\ncontract = \"TPYmHEhy5n8TCEfYGqW2rPxsghSfzghPDn\"\ndecimals = 18\n\n[[token]]",
            1,
        );
        let (code, out) = diff(&text, &["--json"]);
        assert_eq!(code, Some(1), "{out}");
        let doc: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(doc["equal"], false);
        let texts: Vec<&str> = doc["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["text"].as_str().unwrap())
            .collect();
        let has = |t: &str| texts.iter().any(|x| x.starts_with(t));
        assert!(has(&format!("removed destination \"EXAMPLE cold wallet\" (TKrVe1tFhjgjMUAAAzmU5JBr2bgxQUUMAe) of {HOT}")), "{texts:?}");
        assert!(
            has("added approver \"EXAMPLE Dan (treasury)\" (SHA256:"),
            "{texts:?}"
        );
        assert!(
            has("added token USDD (TRC-20 TPYmHEhy5n8TCEfYGqW2rPxsghSfzghPDn)"),
            "{texts:?}"
        );
        assert!(doc["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["kind"] == "added" || c["kind"] == "removed"));
    }

    #[test]
    fn an_unreadable_or_invalid_file_is_exit_2() {
        let (code, _) = diff("version = 1\n", &[]);
        assert_eq!(code, Some(2));
    }
}

/// `policy replay` (issue 14 item 5) on a ledger a real signer wrote: the history is judged
/// again under a candidate, with the candidate's own windows, beside the running signer.
mod replay {
    use super::*;
    use serde_json::Value;

    const TRX: u64 = 1_000_000;

    /// TRX to the exchange: at most `per_tx` per transaction, `window` per 24 h for the key.
    fn policy(per_tx: &str, window: &str) -> String {
        PolicyText::new("replayed")
            .key(
                Key::new(KEY1, "hot", &["TRX"])
                    .window("TRX", "24h", window)
                    .destination(
                        Destination::new(dest(0xa1), "exchange", &["TRX"])
                            .per_tx_max("TRX", per_tx),
                    ),
            )
            .text()
    }

    fn replay(s: &Setup, candidate: &str, json: bool) -> (Option<i32>, String, String) {
        let file = s.dir.path().join("candidate.toml");
        std::fs::write(&file, candidate).unwrap();
        let mut args = vec!["policy", "replay", path_str(&file)];
        args.extend(s.ledger_args());
        if json {
            args.push("--json");
        }
        let out = s.run(&args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[tokio::test]
    async fn a_lowered_window_refuses_the_two_payouts_that_would_cross_it() {
        let s = Setup::new(&[("hot", KEY1_SECRET)], &policy("10", "100"));
        let mut server = s.start().await;
        let mut raws = Vec::new();
        for (n, amount) in [6u64, 6, 6, 6].into_iter().enumerate() {
            let raw = Tx::trx(KEY1, dest(0xa1), amount * TRX)
                .nonce(n as u16 + 1)
                .raw();
            raws.push(raw.clone());
            server
                .client
                .sign(request(KEY1, raw, &format!("p-{n}")))
                .await
                .expect("signed under the policy in force");
        }
        let over = Tx::trx(KEY1, dest(0xa1), 12 * TRX).nonce(9).raw();
        let st = server
            .client
            .sign(request(KEY1, over.clone(), "p-12"))
            .await
            .expect_err("over the per-transaction cap");
        assert_eq!(reason(&st), "over_per_tx_max");
        // The same txid again is a replay, not a new decision.
        server
            .client
            .sign(request(KEY1, raws[0].clone(), "p-0"))
            .await
            .expect("idempotent");
        let evaluated = Tx::trx(KEY1, dest(0xa1), TRX).nonce(20).raw();
        server
            .client
            .evaluate(request(KEY1, evaluated, "p-eval"))
            .await
            .expect("Evaluate is no Sign decision");

        // The policy in force itself: nothing changes (read beside the running signer).
        let (code, said, err) = replay(&s, &policy("10", "100"), false);
        assert_eq!(code, Some(0), "{said}{err}");
        assert!(
            said.contains("5 Sign decisions judged again, 5 unchanged, 0 allowed -> refused, 0 refused -> allowed; 1 Sign record(s) were not policy decisions"),
            "{said}"
        );

        // 15 TRX a day: the third and fourth 6 TRX payouts would have crossed it.
        let (code, said, err) = replay(&s, &policy("10", "15"), false);
        assert_eq!(code, Some(1), "{said}{err}");
        let lines: Vec<&str> = said.lines().collect();
        assert_eq!(lines.len(), 3, "{said}");
        for (line, payout) in lines[..2].iter().zip(["p-2", "p-3"]) {
            assert!(line.contains(&format!("payout {payout:?}")), "{line}");
            assert!(line.contains("6 TRX"), "{line}");
            assert!(
                line.contains("allowed -> refused over_key_window"),
                "{line}"
            );
        }
        assert!(
            lines[2].contains("2 allowed -> refused, 0 refused -> allowed"),
            "{said}"
        );

        // A higher cap lets the 12 TRX payout through; JSON for tools.
        let (code, said, err) = replay(&s, &policy("20", "100"), true);
        assert_eq!(code, Some(1), "{said}{err}");
        let v: Value = serde_json::from_str(&said).expect("JSON");
        let changes = v["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "{v:#}");
        assert_eq!(changes[0]["payout_id"], "p-12");
        assert_eq!(changes[0]["before"]["code"], "over_per_tx_max");
        assert_eq!(changes[0]["after"]["allowed"], true);
        assert_eq!(
            changes[0]["txid"],
            hex::encode(tron_proto::txid(&over)).as_str()
        );
        server.stop();

        // Errors: no ledger, or an invalid candidate.
        let bare = Setup::bare(&policy("10", "100"));
        let (code, _, err) = replay(&bare, &policy("10", "100"), false);
        assert_eq!(code, Some(2));
        assert!(err.contains("no ledger database here"), "{err}");
        let (code, _, err) = replay(&s, "version = 1\n", false);
        assert_eq!(code, Some(2));
        assert!(err.contains("error [policy_invalid]"), "{err}");
    }
}
