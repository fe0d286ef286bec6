//! Policy tests: the examples load, every load problem is reported with its line, every
//! deny code is reachable and isolated, and evaluation never panics.

use std::path::Path;

use proptest::prelude::*;
use tron_proto::{Address, U256};

use super::*;
use crate::decode::{Asset, Decoded, Envelope, Intent, Trc20Transfer, TrxTransfer};

const KEY: &str = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1";
const OTHER_KEY: &str = "TSgTVyxpR39Ya2EVhR1VYLaG15HaiRsUUM";
const EXCHANGE: &str = "TFMvmdXpeTUadpGe54SPqb2uA8TA7F6acd";
const TREASURY: &str = "TB7Mbv7ARbZELRJWDohVbVYsFp3Ci1ZNrU";
const STRANGER: &str = "TCXnvdyuSYwMdXt2RY2UDWfaS9gGtzJrem";
const NILE_USDT: &str = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf";
const MAINNET_USDT: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";
/// The made-up contract of BASE's second token (not in the well-known table).
const USDM_CONTRACT: &str = "TBXSw8fM4jpQkGc6zZjsVABFpVN7UvXPdV";

/// A valid policy; load tests change one line at a time.
const BASE: &str = r#"version = 1
name = "test policy"
network = "nile"

[global]
frozen = false
max_fee_limit = "100"
max_expiration = "10m"
clock_skew = "1m"
memo_allowed = true
max_memo_len = 8

[[token]]
symbol = "USDT"
contract = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
decimals = 6

[[token]]
symbol = "USDM"
contract = "TBXSw8fM4jpQkGc6zZjsVABFpVN7UvXPdV"
decimals = 6

[[caller]]
name = "payments"
unix_uid = 1000
rpcs = ["Sign", "Evaluate"]
all_keys = true

[[key]]
address = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1"
label = "hot key"
assets = ["TRX", "USDT"]
windows = [
  { asset = "USDT", window = "1h", max = "3000" },
  { asset = "USDT", window = "24h", max = "5000" },
  { asset = "TRX", window = "24h", max = "100" },
]

[[key.destination]]
address = "TFMvmdXpeTUadpGe54SPqb2uA8TA7F6acd"
label = "exchange hot wallet"
assets = ["USDT"]
per_tx_max = { USDT = "600" }
windows = [
  { asset = "USDT", window = "24h", max = "2000" },
]

[[key.destination]]
address = "TB7Mbv7ARbZELRJWDohVbVYsFp3Ci1ZNrU"
label = "treasury"
assets = ["TRX", "USDT"]
per_tx_max = { TRX = "50", USDT = "0.5" }

[[key]]
address = "TSgTVyxpR39Ya2EVhR1VYLaG15HaiRsUUM"
label = "frozen key"
frozen = true
assets = ["TRX"]
windows = [{ asset = "TRX", window = "1h", max = "1" }]
"#;

fn addr(s: &str) -> Address {
    Address::from_base58(s).unwrap()
}

fn base() -> LoadedPolicy {
    match parse(BASE, "base.toml") {
        Ok(p) => p,
        Err(e) => panic!("base policy must load:\n{e}"),
    }
}

// ---------------------------------------------------------------- network, well-known tokens

#[test]
fn network_is_required_and_must_be_known() {
    assert_eq!(base().policy.network, Network::Nile);
    let t = with("network = \"nile\"\n", "");
    expect(&t, ProblemCode::MissingField, 1);
    let t = with("network = \"nile\"", "network = \"Nile\"");
    expect(&t, ProblemCode::BadNetwork, line_of(&t, "network", 0));
    let t = with("network = \"nile\"", "network = \"tron\"");
    expect(&t, ProblemCode::BadNetwork, line_of(&t, "network", 0));
    for n in Network::ALL {
        assert_eq!(Network::from_name(n.as_str()), Some(n));
    }
}

#[test]
fn well_known_token_with_wrong_decimals_is_refused_at_its_position() {
    // USDT with 18 decimals would make "3000" mean 3 * 10^21 base units.
    let t = with("decimals = 6\n\n[[token]]", "decimals = 18\n\n[[token]]");
    let ps = problems(&t);
    assert_eq!(ps.len(), 1, "{ps:?}");
    let p = &ps[0];
    assert_eq!(p.code, ProblemCode::KnownTokenDecimals);
    assert_eq!(
        (p.line, p.column),
        (line_of(&t, "decimals = 18", 0), "decimals = ".len() + 1)
    );
    assert!(
        p.message.contains(NILE_USDT) && p.message.contains("6 decimals, not 18"),
        "{}",
        p.message
    );
    let shown = p.to_string();
    assert!(
        shown.starts_with(&format!("t.toml:{}:12: ", p.line))
            && shown.ends_with(" [known_token_decimals]"),
        "{shown}"
    );
    // The real decimals load; a contract the table does not know keeps any decimals.
    base();
    let t = with(
        "symbol = \"USDM\"\ncontract = \"TBXSw8fM4jpQkGc6zZjsVABFpVN7UvXPdV\"\ndecimals = 6",
        "symbol = \"USDM\"\ncontract = \"TBXSw8fM4jpQkGc6zZjsVABFpVN7UvXPdV\"\ndecimals = 18",
    );
    assert!(parse(&t, "t.toml").is_ok());
}

#[test]
fn well_known_token_of_another_network_is_refused() {
    // Mainnet USDT under a Nile policy.
    let t = with(USDM_CONTRACT, MAINNET_USDT);
    expect(&t, ProblemCode::TokenNetwork, line_of(&t, MAINNET_USDT, 0));
    // The same file labelled mainnet now has the Nile contract on the wrong network.
    let t = t.replacen("network = \"nile\"", "network = \"mainnet\"", 1);
    expect(&t, ProblemCode::TokenNetwork, line_of(&t, NILE_USDT, 0));
    // Wrong decimals and wrong network are both reported.
    let t = with("decimals = 6\n\n[[token]]", "decimals = 8\n\n[[token]]").replacen(
        "network = \"nile\"",
        "network = \"shasta\"",
        1,
    );
    let codes: Vec<ProblemCode> = problems(&t).iter().map(|p| p.code).collect();
    assert_eq!(
        codes,
        vec![ProblemCode::TokenNetwork, ProblemCode::KnownTokenDecimals]
    );
}

#[test]
fn explain_shows_network_and_limits_in_base_units() {
    let text = base().explain();
    for needle in [
        "Network: nile",
        "at most 3000 (3000000000 base units) in any 1h",
        "USDT: at most 600 (600000000 base units) per transaction",
        "TRX: at most 50 (50000000 sun) per transaction",
        "at most 100 TRX (100000000 sun) per transaction",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}

// ---------------------------------------------------------------- clock skew against windows

#[test]
fn clock_skew_not_shorter_than_a_window_is_refused() {
    // The issue's case: a 1h skew against a 30m window, here the key's own skew.
    let t = with(
        "label = \"hot key\"\n",
        "label = \"hot key\"\nclock_skew = \"1h\"\n",
    )
    .replacen(
        "{ asset = \"USDT\", window = \"1h\", max = \"3000\" }",
        "{ asset = \"USDT\", window = \"30m\", max = \"3000\" }",
        1,
    );
    let ps = problems(&t);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(ps[0].code, ProblemCode::ClockSkewTooLong);
    assert_eq!(
        (ps[0].line, ps[0].column),
        (
            line_of(&t, "clock_skew = \"1h\"", 0),
            "clock_skew = ".len() + 1
        )
    );
    assert!(ps[0].message.contains("30m"), "{}", ps[0].message);
    // Equal is refused too: the skew must be shorter.
    let t = with(
        "label = \"hot key\"\n",
        "label = \"hot key\"\nclock_skew = \"1h\"\n",
    );
    expect(
        &t,
        ProblemCode::ClockSkewTooLong,
        line_of(&t, "clock_skew = \"1h\"", 0),
    );
    // The global skew is checked against every key that inherits it, a destination's
    // window included; the problem points at [global].
    let t = with(
        "  { asset = \"USDT\", window = \"24h\", max = \"2000\" },",
        "  { asset = \"USDT\", window = \"1m\", max = \"2000\" },",
    );
    let ps = problems(&t);
    assert!(
        ps.iter().all(|p| p.code == ProblemCode::ClockSkewTooLong
            && p.line == line_of(&t, "clock_skew", 0)
            && p.message
                .contains("destination \"exchange hot wallet\" 1m window")),
        "{ps:?}"
    );
    // Just shorter loads.
    let t = with(
        "  { asset = \"USDT\", window = \"24h\", max = \"2000\" },",
        "  { asset = \"USDT\", window = \"61s\", max = \"2000\" },",
    );
    assert!(parse(&t, "t.toml").is_ok());
}

#[test]
fn a_window_plus_the_skew_must_fit_in_the_ledger_history() {
    let t = with(
        "{ asset = \"TRX\", window = \"24h\", max = \"100\" }",
        "{ asset = \"TRX\", window = \"31d\", max = \"100\" }",
    );
    expect(&t, ProblemCode::OutOfRange, line_of(&t, "clock_skew", 0));
    let t = t.replacen("clock_skew = \"1m\"", "clock_skew = \"1s\"", 1);
    expect(&t, ProblemCode::OutOfRange, line_of(&t, "clock_skew", 0));
    let t = with(
        "{ asset = \"TRX\", window = \"24h\", max = \"100\" }",
        "{ asset = \"TRX\", window = \"30d\", max = \"100\" }",
    );
    assert!(parse(&t, "t.toml").is_ok());
}

#[test]
fn windows_count_what_can_still_land_inside_them() {
    // BASE: 1m skew; the treasury has no window of its own, the key's 1h USDT cap is 3000.
    let p = base().policy;
    let mut ledger = MemUsage::default();
    let spent = Entry {
        key: addr(KEY),
        asset: Asset::Token(addr(NILE_USDT)),
        to: addr(TREASURY),
        amount: U256::from(3000 * U),
        // Expired 1h 30s ago: it could still land 30s after the start of the 1h window.
        expiration: NOW - 3_630_000,
    };
    ledger.0.push(spent);
    assert_eq!(
        decide(&p, KEY, &usdt(TREASURY, 1), &ledger).deny_code(),
        Some(DenyCode::OverKeyWindow)
    );
    // Once expiration + skew is before the window's start, it no longer counts.
    ledger.0[0].expiration = NOW - 3_660_001;
    assert!(decide(&p, KEY, &usdt(TREASURY, 1), &ledger).is_allow());
}

// ---------------------------------------------------------------- examples and identity

#[test]
fn example_policies_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for (file, usdt) in [("nile.toml", NILE_USDT), ("mainnet.toml", MAINNET_USDT)] {
        let lp = match load_file(&root.join(file)) {
            Ok(lp) => lp,
            Err(e) => panic!("{file} must load:\n{e}"),
        };
        let p = &lp.policy;
        let usdt = Asset::Token(addr(usdt));
        assert_eq!(p.asset_info(&usdt).map(|i| i.decimals), Some(6), "{file}");
        let k = &p.keys[0];
        assert!(k.asset(&Asset::Trx).is_some() && k.asset(&usdt).is_some());
        assert!(k.destinations.len() >= 2, "{file}: two destinations");
        let windows: Vec<u64> = k.assets[0].windows.iter().map(|w| w.window_ms).collect();
        assert_eq!(windows, vec![3_600_000, 86_400_000], "{file}: 1h and 24h");
        assert_eq!(p.max_window_ms(), 86_400_000);
        let bytes = std::fs::read(root.join(file)).unwrap();
        assert_eq!(lp.hash, hash_bytes(&bytes));
        let text = lp.explain();
        assert!(text.contains("default deny") && text.contains(&lp.hash_hex()));
    }
    let nile = load_file(&root.join("nile.toml")).unwrap();
    assert!(nile.policy.keys().any(|k| *k == addr(KEY)));
}

#[test]
fn hash_is_sha256_of_exact_bytes() {
    let a = base();
    let b = parse(&format!("{BASE}\n"), "b.toml").unwrap();
    assert_eq!(a.policy, b.policy);
    assert_ne!(a.hash, b.hash, "a reformatted file is a different policy");
    assert_eq!(a.hash_hex().len(), 64);
}

#[test]
fn base_policy_contents() {
    let lp = base();
    assert_eq!((lp.version, lp.name.as_str()), (1, "test policy"));
    let k = lp.policy.key(&addr(KEY)).unwrap();
    assert_eq!(k.envelope.max_fee_limit, 100_000_000);
    assert_eq!(k.envelope.max_memo_len, 8);
    let t = k.destination(&addr(TREASURY)).unwrap();
    let usdt = Asset::Token(addr(NILE_USDT));
    assert_eq!(t.asset(&usdt).unwrap().per_tx_max, U256::from(500_000u32));
    assert!(lp.policy.key(&addr(OTHER_KEY)).unwrap().frozen);
}

// ---------------------------------------------------------------- load problems

/// Replaces the single occurrence of `from` in BASE.
fn with(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "{from:?} must occur once");
    BASE.replacen(from, to, 1)
}

/// 1-based line of the first occurrence of `needle` (or the nth, 0-based).
fn line_of(text: &str, needle: &str, nth: usize) -> usize {
    let (at, _) = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    text[..at].matches('\n').count() + 1
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, "t.toml") {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(e) => {
            assert_eq!(e.code(), "policy_invalid");
            e.problems
        }
    }
}

/// Asserts that `text` has a problem with `code` on `line`, and no problem of another code.
fn expect(text: &str, code: ProblemCode, line: usize) {
    let ps = problems(text);
    assert!(
        ps.iter().any(|p| p.code == code && p.line == line),
        "expected {code:?} on line {line}, got:\n{}",
        PolicyLoadError {
            problems: ps.clone()
        }
    );
    assert!(
        ps.iter().all(|p| p.code == code),
        "unexpected extra problems:\n{}",
        PolicyLoadError { problems: ps }
    );
}

#[test]
fn syntax_errors() {
    let t = with("name = \"test policy\"", "name = \"test policy");
    expect(&t, ProblemCode::Syntax, 2);
    // A key written twice in one table is a TOML error.
    let t = with("frozen = false\n", "frozen = false\nfrozen = true\n");
    expect(&t, ProblemCode::Syntax, line_of(&t, "frozen = true", 0));
}

#[test]
fn unknown_fields_everywhere() {
    for (from, to, marker) in [
        ("version = 1\n", "version = 1\nowner = \"x\"\n", "owner"),
        (
            "frozen = false\n",
            "frozen = false\nfreeze = true\n",
            "freeze",
        ),
        (
            "decimals = 6\n\n[[token]]",
            "decimals = 6\nname = \"x\"\n\n[[token]]",
            "name = \"x\"",
        ),
        (
            "label = \"hot key\"\n",
            "label = \"hot key\"\nmax_per_day = \"1\"\n",
            "max_per_day",
        ),
        (
            "label = \"treasury\"\n",
            "label = \"treasury\"\nnote = \"x\"\n",
            "note",
        ),
        (
            "window = \"1h\", max = \"3000\"",
            "window = \"1h\", max = \"3000\", min = \"1\"",
            "min =",
        ),
    ] {
        let t = with(from, to);
        expect(&t, ProblemCode::UnknownField, line_of(&t, marker, 0));
    }
}

#[test]
fn missing_fields() {
    // The key section starts at its [[key]] header.
    let t = with("label = \"hot key\"\n", "");
    let ps = problems(&t);
    assert!(ps.iter().any(|p| p.code == ProblemCode::MissingField
        && (p.line == line_of(&t, "[[key]]", 0) || p.line == line_of(&t, KEY, 0))));

    let t = with("per_tx_max = { USDT = \"600\" }\n", "");
    expect(
        &t,
        ProblemCode::MissingField,
        line_of(&t, "[[key.destination]]", 0),
    );

    // An envelope limit set neither in [global] nor on the key.
    let t = with("max_fee_limit = \"100\"\n", "");
    let ps = problems(&t);
    assert_eq!(ps.len(), 2, "one per key: {ps:?}");
    assert!(ps.iter().all(|p| p.code == ProblemCode::MissingField));

    // An asset without any key-wide window.
    let t = with(
        "  { asset = \"TRX\", window = \"24h\", max = \"100\" },\n",
        "",
    );
    expect(
        &t,
        ProblemCode::MissingField,
        line_of(&t, "assets = [\"TRX\", \"USDT\"]", 0),
    );

    let t = with("version = 1\n", "");
    expect(&t, ProblemCode::MissingField, 1);

    let t = with("name = \"test policy\"", "name = \" \"");
    expect(&t, ProblemCode::MissingField, 2);

    // Memos allowed globally but no length anywhere: one problem per key that allows them.
    let t = with("max_memo_len = 8\n", "");
    let ps = problems(&t);
    assert!(
        !ps.is_empty() && ps.iter().all(|p| p.code == ProblemCode::MissingField),
        "{ps:?}"
    );
}

#[test]
fn wrong_types() {
    let t = with("max = \"3000\"", "max = 3000");
    expect(&t, ProblemCode::WrongType, line_of(&t, "max = 3000", 0));
    let t = with("frozen = true", "frozen = \"yes\"");
    expect(&t, ProblemCode::WrongType, line_of(&t, "\"yes\"", 0));
    // Sections of the wrong kind.
    let ps = problems(
        "version = 1\nname = \"x\"\nglobal = 3\ntoken = 5\nkey = [\"k\"]\nnetwork = \"nile\"\n",
    );
    let got: Vec<(ProblemCode, usize)> = ps.iter().map(|p| (p.code, p.line)).collect();
    assert_eq!(
        got,
        vec![
            (ProblemCode::NoCallers, 1),
            (ProblemCode::WrongType, 3),
            (ProblemCode::WrongType, 4),
            (ProblemCode::WrongType, 5)
        ]
    );
    let t = with("assets = [\"TRX\"]\n", "assets = \"TRX\"\n");
    expect(
        &t,
        ProblemCode::WrongType,
        line_of(&t, "assets = \"TRX\"", 0),
    );
}

#[test]
fn unsupported_version() {
    expect(
        &with("version = 1", "version = 2"),
        ProblemCode::UnsupportedVersion,
        1,
    );
}

#[test]
fn bad_addresses() {
    // Last character changed: checksum mismatch. Then a hex address (refused: one spelling).
    let t = with(KEY, "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w2");
    expect(&t, ProblemCode::BadAddress, line_of(&t, "w2", 0));
    let t = with(TREASURY, "4194a15629b2b2bbd3a5453e6d6696b2875278633b");
    expect(&t, ProblemCode::BadAddress, line_of(&t, "4194a1", 0));
    let t = with(NILE_USDT, "TXYZ0");
    expect(&t, ProblemCode::BadAddress, line_of(&t, "TXYZ0", 0));
}

#[test]
fn bad_amounts() {
    for bad in ["1.0000001", "-5", "1e3", "", " 5", "5.", ".5"] {
        let t = with("USDT = \"600\"", &format!("USDT = \"{bad}\""));
        expect(&t, ProblemCode::BadAmount, line_of(&t, "per_tx_max", 0));
    }
}

#[test]
fn zero_amounts() {
    let t = with("max = \"5000\"", "max = \"0\"");
    expect(&t, ProblemCode::ZeroAmount, line_of(&t, "max = \"0\"", 0));
    let t = with("TRX = \"50\"", "TRX = \"0.000000\"");
    expect(
        &t,
        ProblemCode::ZeroAmount,
        line_of(&t, "TRX = \"0.000000\"", 0),
    );
}

#[test]
fn bad_durations() {
    for bad in ["0h", "1w", "1.5h", "", "24"] {
        let t = with(
            "window = \"24h\", max = \"2000\"",
            &format!("window = \"{bad}\", max = \"2000\""),
        );
        expect(
            &t,
            ProblemCode::BadDuration,
            line_of(&t, "max = \"2000\"", 0),
        );
    }
    let t = with("clock_skew = \"1m\"", "clock_skew = \"0s\"");
    expect(&t, ProblemCode::BadDuration, line_of(&t, "clock_skew", 0));
}

#[test]
fn out_of_range() {
    for (from, to, marker) in [
        (
            "max_expiration = \"10m\"",
            "max_expiration = \"25h\"",
            "max_expiration",
        ),
        (
            "max_expiration = \"10m\"",
            "max_expiration = \"2d\"",
            "max_expiration",
        ),
        ("clock_skew = \"1m\"", "clock_skew = \"2h\"", "clock_skew"),
        (
            "max_fee_limit = \"100\"",
            "max_fee_limit = \"15000.000001\"",
            "max_fee_limit",
        ),
        ("max_memo_len = 8", "max_memo_len = 0", "max_memo_len"),
        ("max_memo_len = 8", "max_memo_len = 100000", "max_memo_len"),
        ("max_memo_len = 8", "max_memo_len = -1", "max_memo_len"),
        (
            "decimals = 6\n\n[[caller]]",
            "decimals = 80\n\n[[caller]]",
            "decimals = 80",
        ),
        ("symbol = \"USDM\"", "symbol = \"US DM\"", "US DM"),
        (
            "window = \"1h\", max = \"1\"",
            "window = \"60d\", max = \"1\"",
            "60d",
        ),
    ] {
        let t = with(from, to);
        expect(&t, ProblemCode::OutOfRange, line_of(&t, marker, 0));
    }
    // The network cap itself is fine.
    parse(
        &with("max_fee_limit = \"100\"", "max_fee_limit = \"15000\""),
        "t",
    )
    .unwrap();
}

#[test]
fn duplicates() {
    // Same key twice.
    let t = with(OTHER_KEY, KEY);
    expect(&t, ProblemCode::DuplicateKey, line_of(&t, KEY, 1));
    // Same destination twice under one key.
    let t = with(TREASURY, EXCHANGE);
    expect(
        &t,
        ProblemCode::DuplicateDestination,
        line_of(&t, EXCHANGE, 1),
    );
    // Token symbol, token contract, TRX as a token, an asset listed twice.
    let t = with("symbol = \"USDM\"", "symbol = \"usdt\"");
    expect(&t, ProblemCode::DuplicateAsset, line_of(&t, "usdt", 0));
    let t = with(USDM_CONTRACT, NILE_USDT);
    expect(&t, ProblemCode::DuplicateAsset, line_of(&t, NILE_USDT, 1));
    let t = with("symbol = \"USDM\"", "symbol = \"TRX\"");
    expect(
        &t,
        ProblemCode::DuplicateAsset,
        line_of(&t, "symbol = \"TRX\"", 0),
    );
    let t = with(
        "assets = [\"TRX\", \"USDT\"]\nper",
        "assets = [\"TRX\", \"USDT\", \"TRX\"]\nper",
    );
    expect(
        &t,
        ProblemCode::DuplicateAsset,
        line_of(&t, "\"TRX\"]\nper", 0),
    );
}

#[test]
fn duplicate_window() {
    let t = with(
        "{ asset = \"TRX\", window = \"24h\", max = \"100\" },",
        "{ asset = \"TRX\", window = \"24h\", max = \"100\" },\n  { asset = \"TRX\", window = \"1d\", max = \"100\" },",
    );
    expect(&t, ProblemCode::DuplicateWindow, line_of(&t, "1d", 0));
}

#[test]
fn undeclared_assets() {
    // Destination lists an asset the key does not allow.
    let t = with(
        "assets = [\"TRX\", \"USDT\"]\nper",
        "assets = [\"TRX\", \"USDM\"]\nper",
    );
    let ps = problems(&t);
    let line = line_of(&t, "\"USDM\"]\nper", 0);
    assert!(
        ps.iter()
            .any(|p| p.code == ProblemCode::UndeclaredAsset && p.line == line),
        "{ps:?}"
    );
    // A symbol declared nowhere.
    let t = with("assets = [\"TRX\"]\n", "assets = [\"TRX\", \"DOGE\"]\n");
    expect(&t, ProblemCode::UndeclaredAsset, line_of(&t, "DOGE", 0));
    // A key window for an asset the key does not list.
    let t = with(
        "window = \"1h\", max = \"1\"",
        "window = \"1h\", max = \"1\" }, { asset = \"USDT\", window = \"1h\", max = \"1\"",
    );
    expect(
        &t,
        ProblemCode::UndeclaredAsset,
        line_of(&t, "asset = \"USDT\", window = \"1h\", max = \"1\"", 0),
    );
    // per_tx_max for an asset the destination does not list.
    let t = with(
        "per_tx_max = { USDT = \"600\" }",
        "per_tx_max = { USDT = \"600\", TRX = \"1\" }",
    );
    expect(
        &t,
        ProblemCode::UndeclaredAsset,
        line_of(&t, "TRX = \"1\"", 0),
    );
}

#[test]
fn inconsistent_limits() {
    // Per-tx above the destination's smallest window.
    let t = with("USDT = \"600\"", "USDT = \"2000.000001\"");
    expect(
        &t,
        ProblemCode::InconsistentLimit,
        line_of(&t, "2000.000001", 0),
    );
    // Per-tx above the key's smallest window for the asset.
    let t = with("TRX = \"50\"", "TRX = \"101\"");
    expect(
        &t,
        ProblemCode::InconsistentLimit,
        line_of(&t, "TRX = \"101\"", 0),
    );
    // A shorter window allowing more than a longer one (reported at the longer one).
    let t = with(
        "window = \"1h\", max = \"3000\"",
        "window = \"1h\", max = \"5000.5\"",
    );
    expect(
        &t,
        ProblemCode::InconsistentLimit,
        line_of(&t, "max = \"5000\"", 0),
    );
    // memo_allowed = false with a memo length in the same table.
    let t = with("memo_allowed = true", "memo_allowed = false");
    expect(
        &t,
        ProblemCode::InconsistentLimit,
        line_of(&t, "max_memo_len", 0),
    );
    // Equal limits are consistent.
    parse(&with("USDT = \"600\"", "USDT = \"2000\""), "t").unwrap();
}

#[test]
fn no_keys() {
    let cut = BASE.find("[[key]]").unwrap();
    expect(&BASE[..cut], ProblemCode::NoKeys, 1);
}

#[test]
fn every_problem_is_reported_in_line_order() {
    let t = with("version = 1", "version = 7");
    let t = t.replacen("max = \"3000\"", "max = 3000", 1);
    let t = t.replacen(TREASURY, "Tnope", 1);
    let t = t.replacen("frozen = true", "frozen = true\ncolor = \"red\"", 1);
    let ps = problems(&t);
    let codes: Vec<ProblemCode> = ps.iter().map(|p| p.code).collect();
    assert_eq!(
        codes,
        vec![
            ProblemCode::UnsupportedVersion,
            ProblemCode::WrongType,
            ProblemCode::BadAddress,
            ProblemCode::UnknownField
        ],
        "{ps:?}"
    );
    let lines: Vec<usize> = ps.iter().map(|p| p.line).collect();
    assert!(lines.windows(2).all(|w| w[0] < w[1]));
    let shown = PolicyLoadError { problems: ps }.to_string();
    assert!(
        shown.lines().count() == 4 && shown.starts_with("t.toml:1:11: "),
        "{shown}"
    );
}

#[test]
fn unreadable_and_non_utf8_files() {
    let dir = std::env::temp_dir().join(format!("policy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = load_file(&dir.join("missing.toml")).unwrap_err();
    assert_eq!(missing.code(), "policy_unreadable");
    let bin = dir.join("bin.toml");
    std::fs::write(&bin, b"name = \"\xff\"").unwrap();
    let e = load_file(&bin).unwrap_err();
    assert_eq!(e.problems[0].code, ProblemCode::NotUtf8);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn problem_codes_are_distinct() {
    use ProblemCode::*;
    let all = [
        Unreadable,
        NotUtf8,
        Syntax,
        UnknownField,
        MissingField,
        WrongType,
        UnsupportedVersion,
        BadAddress,
        BadAmount,
        BadDuration,
        OutOfRange,
        DuplicateKey,
        DuplicateDestination,
        DuplicateAsset,
        DuplicateWindow,
        UndeclaredAsset,
        InconsistentLimit,
        ZeroAmount,
        NoKeys,
    ];
    let codes: std::collections::HashSet<_> = all.iter().map(|c| c.as_str()).collect();
    assert_eq!(codes.len(), all.len());
}

// ---------------------------------------------------------------- evaluation

const NOW: i64 = 1_700_000_000_000;

/// A signed transfer remembered by the in-memory ledger.
struct Entry {
    key: Address,
    asset: Asset,
    to: Address,
    amount: U256,
    expiration: i64,
}

/// Counts an entry toward window W at `now` while its expiration >= now - W.
#[derive(Default)]
struct MemUsage(Vec<Entry>);

impl MemUsage {
    fn add(&mut self, d: &Decoded) {
        self.0.push(Entry {
            key: *d.intent.owner(),
            asset: d.intent.asset(),
            to: *d.intent.to(),
            amount: d.intent.amount(),
            expiration: d.envelope.expiration,
        });
    }
}

impl Usage for MemUsage {
    fn used(
        &self,
        key: &Address,
        asset: &Asset,
        dest: Option<&Address>,
        window_ms: u64,
        now_ms: i64,
    ) -> U256 {
        let from = i128::from(now_ms) - i128::from(window_ms);
        self.0
            .iter()
            .filter(|e| e.key == *key && e.asset == *asset && dest.is_none_or(|d| *d == e.to))
            .filter(|e| i128::from(e.expiration) >= from)
            .fold(U256::ZERO, |acc, e| acc.saturating_add(e.amount))
    }
}

/// A usage source that claims everything is used (as a failing ledger should).
struct Exhausted;
impl Usage for Exhausted {
    fn used(&self, _: &Address, _: &Asset, _: Option<&Address>, _: u64, _: i64) -> U256 {
        U256::MAX
    }
}

fn envelope() -> Envelope {
    Envelope {
        txid: [0; 32],
        ref_block_bytes: [1, 2],
        ref_block_hash: [3; 8],
        expiration: NOW + 60_000,
        timestamp: NOW,
        fee_limit: 30_000_000,
        memo: Vec::new(),
        permission_id: 0,
    }
}

/// `amount` in micro-units (6 decimals).
fn usdt(to: &str, micro: u64) -> Decoded {
    Decoded {
        envelope: envelope(),
        intent: Intent::Trc20(Trc20Transfer {
            owner: addr(KEY),
            token: addr(NILE_USDT),
            to: addr(to),
            amount: U256::from(micro),
        }),
    }
}

fn trx(to: &str, sun: u64) -> Decoded {
    Decoded {
        envelope: Envelope {
            fee_limit: 0,
            ..envelope()
        },
        intent: Intent::Trx(TrxTransfer {
            owner: addr(KEY),
            to: addr(to),
            amount: sun,
        }),
    }
}

fn decide(p: &Policy, key: &str, d: &Decoded, usage: &dyn Usage) -> Decision {
    let key = addr(key);
    p.evaluate(
        &Request {
            key: &key,
            decoded: d,
            now_ms: NOW,
            deposit_index: None,
        },
        usage,
    )
}

fn code(p: &Policy, d: &Decoded) -> Option<DenyCode> {
    decide(p, KEY, d, &MemUsage::default()).deny_code()
}

const U: u64 = 1_000_000;

#[test]
fn allows_within_limits_and_names_the_rule() {
    let p = base().policy;
    let d = decide(&p, KEY, &usdt(EXCHANGE, 600 * U), &MemUsage::default());
    assert_eq!(
        d,
        Decision::Allow(Allow {
            rule: format!("key {KEY}/destination \"exchange hot wallet\"/USDT")
        })
    );
    assert!(code(&p, &trx(TREASURY, 50 * U)).is_none());
    // The decoded transaction round-trips through the real encoder and decoder.
    let d = usdt(EXCHANGE, U);
    let again = crate::decode::decode(&crate::decode::encode(&d)).unwrap();
    assert!(decide(&p, KEY, &again, &MemUsage::default()).is_allow());
}

#[test]
fn deny_frozen_globally_and_per_key() {
    let mut p = base().policy;
    let other = Decoded {
        intent: Intent::Trx(TrxTransfer {
            owner: addr(OTHER_KEY),
            to: addr(EXCHANGE),
            amount: 1,
        }),
        ..trx(EXCHANGE, 1)
    };
    assert_eq!(
        decide(&p, OTHER_KEY, &other, &MemUsage::default()).deny_code(),
        Some(DenyCode::Frozen)
    );
    assert!(code(&p, &usdt(EXCHANGE, U)).is_none());
    p.frozen = true;
    let Decision::Deny(d) = decide(&p, KEY, &usdt(EXCHANGE, U), &MemUsage::default()) else {
        panic!("global freeze must refuse");
    };
    assert_eq!(d.code, DenyCode::Frozen);
    assert!(d.message.contains("global"));
    // Freeze comes before the key check.
    assert_eq!(
        decide(&p, STRANGER, &usdt(EXCHANGE, U), &MemUsage::default()).deny_code(),
        Some(DenyCode::Frozen)
    );
}

#[test]
fn deny_unknown_key_and_owner_mismatch() {
    let p = base().policy;
    assert_eq!(
        decide(&p, STRANGER, &usdt(EXCHANGE, U), &MemUsage::default()).deny_code(),
        Some(DenyCode::UnknownKey)
    );
    // Known key, but the transaction spends from another account.
    let mut d = usdt(EXCHANGE, U);
    if let Intent::Trc20(t) = &mut d.intent {
        t.owner = addr(STRANGER);
    }
    assert_eq!(code(&p, &d), Some(DenyCode::OwnerMismatch));
}

#[test]
fn deny_asset_and_destination() {
    let p = base().policy;
    // USDM is declared but this key does not list it; an undeclared token likewise.
    for token in [USDM_CONTRACT, STRANGER] {
        let mut d = usdt(EXCHANGE, U);
        if let Intent::Trc20(t) = &mut d.intent {
            t.token = addr(token);
        }
        assert_eq!(code(&p, &d), Some(DenyCode::AssetNotAllowed));
    }
    assert_eq!(
        code(&p, &usdt(STRANGER, U)),
        Some(DenyCode::DestinationNotAllowed)
    );
    // The exchange takes USDT only.
    assert_eq!(
        code(&p, &trx(EXCHANGE, U)),
        Some(DenyCode::DestinationAssetNotAllowed)
    );
}

#[test]
fn deny_zero_and_per_tx() {
    let p = base().policy;
    assert_eq!(code(&p, &usdt(EXCHANGE, 0)), Some(DenyCode::ZeroAmount));
    assert_eq!(
        code(&p, &usdt(EXCHANGE, 600 * U + 1)),
        Some(DenyCode::OverPerTxMax)
    );
    assert_eq!(
        code(&p, &usdt(TREASURY, U / 2 + 1)),
        Some(DenyCode::OverPerTxMax)
    );
    assert!(code(&p, &usdt(TREASURY, U / 2)).is_none());
    let Decision::Deny(d) = decide(&p, KEY, &usdt(EXCHANGE, 700 * U), &MemUsage::default()) else {
        panic!()
    };
    assert!(
        d.message.contains("700 USDT") && d.message.contains("600 USDT"),
        "{}",
        d.message
    );
}

#[test]
fn deny_envelope() {
    let p = base().policy;
    let with = |f: &dyn Fn(&mut Envelope)| {
        let mut d = usdt(EXCHANGE, U);
        f(&mut d.envelope);
        code(&p, &d)
    };
    // fee_limit: 100 TRX is the maximum.
    assert_eq!(with(&|e| e.fee_limit = 100_000_000), None);
    assert_eq!(
        with(&|e| e.fee_limit = 100_000_001),
        Some(DenyCode::FeeLimitTooHigh)
    );
    assert_eq!(with(&|e| e.fee_limit = -1), Some(DenyCode::FeeLimitTooHigh));
    // Expiration: at most 10m + 1m skew ahead; not before now - 1m.
    assert_eq!(with(&|e| e.expiration = NOW + 660_000), None);
    assert_eq!(
        with(&|e| e.expiration = NOW + 660_001),
        Some(DenyCode::ExpirationTooFar)
    );
    assert_eq!(
        with(&|e| e.expiration = i64::MAX),
        Some(DenyCode::ExpirationTooFar)
    );
    assert_eq!(with(&|e| e.expiration = NOW - 60_000), None);
    assert_eq!(
        with(&|e| e.expiration = NOW - 60_001),
        Some(DenyCode::Expired)
    );
    assert_eq!(with(&|e| e.expiration = i64::MIN), Some(DenyCode::Expired));
    // Timestamp: at most 1m ahead.
    assert_eq!(with(&|e| e.timestamp = NOW + 60_000), None);
    assert_eq!(
        with(&|e| e.timestamp = NOW + 60_001),
        Some(DenyCode::TimestampInFuture)
    );
    // Memo: up to 8 bytes.
    assert_eq!(with(&|e| e.memo = b"12345678".to_vec()), None);
    assert_eq!(
        with(&|e| e.memo = b"123456789".to_vec()),
        Some(DenyCode::MemoTooLong)
    );
    let mut p2 = p.clone();
    p2.keys[0].envelope.memo_allowed = false;
    let mut d = usdt(EXCHANGE, U);
    d.envelope.memo = b"x".to_vec();
    assert_eq!(code(&p2, &d), Some(DenyCode::MemoNotAllowed));
}

#[test]
fn deny_destination_window_then_key_window() {
    let p = base().policy;
    let mut ledger = MemUsage::default();
    // Exchange: 24h cap 2000; per-tx 600. Three payouts of 600 leave 200.
    for _ in 0..3 {
        let d = usdt(EXCHANGE, 600 * U);
        assert!(decide(&p, KEY, &d, &ledger).is_allow());
        ledger.add(&d);
    }
    assert!(decide(&p, KEY, &usdt(EXCHANGE, 200 * U), &ledger).is_allow());
    let Decision::Deny(d) = decide(&p, KEY, &usdt(EXCHANGE, 200 * U + 1), &ledger) else {
        panic!("over the destination window")
    };
    assert_eq!(d.code, DenyCode::OverDestinationWindow);
    assert!(
        d.message.contains("24h USDT limit of 2000")
            && d.message.contains("used 1800, asked 200.000001"),
        "{}",
        d.message
    );

    // Key 1h cap is 3000 USDT over all destinations: with 2000 to the exchange and 1000 more
    // to the treasury, the key window refuses even a tiny payment to the treasury.
    ledger.add(&usdt(EXCHANGE, 200 * U));
    ledger.0.push(Entry {
        key: addr(KEY),
        asset: Asset::Token(addr(NILE_USDT)),
        to: addr(TREASURY),
        amount: U256::from(1000 * U),
        expiration: NOW,
    });
    let Decision::Deny(d) = decide(&p, KEY, &usdt(TREASURY, 1), &ledger) else {
        panic!("over the key window")
    };
    assert_eq!(d.code, DenyCode::OverKeyWindow);
    assert_eq!(
        d.message,
        format!("would exceed the 1h USDT limit of 3000 for key {KEY}: used 3000, asked 0.000001")
    );

    // Entries that can no longer land in the window (expiration plus the 1m skew is before
    // its start) no longer count.
    let later = addr(KEY);
    let req = Request {
        key: &later,
        decoded: &usdt(TREASURY, 1),
        now_ms: NOW + 60_000 + 60_000 + 3_600_001,
        deposit_index: None,
    };
    let mut d = usdt(TREASURY, 1);
    d.envelope.expiration = req.now_ms + 60_000;
    d.envelope.timestamp = req.now_ms;
    let req = Request { decoded: &d, ..req };
    assert!(p.evaluate(&req, &ledger).is_allow());
}

#[test]
fn key_window_counts_all_destinations() {
    let p = base().policy;
    let mut ledger = MemUsage::default();
    // TRX: key 24h cap 100, treasury per-tx 50.
    for _ in 0..2 {
        let d = trx(TREASURY, 50 * U);
        assert!(decide(&p, KEY, &d, &ledger).is_allow());
        ledger.add(&d);
    }
    assert_eq!(
        decide(&p, KEY, &trx(TREASURY, 1), &ledger).deny_code(),
        Some(DenyCode::OverKeyWindow)
    );
}

#[test]
fn failing_ledger_fails_closed() {
    let p = base().policy;
    assert_eq!(
        decide(&p, KEY, &usdt(EXCHANGE, 1), &Exhausted).deny_code(),
        Some(DenyCode::OverDestinationWindow)
    );
    assert_eq!(
        decide(&p, KEY, &usdt(TREASURY, 1), &Exhausted).deny_code(),
        Some(DenyCode::OverKeyWindow)
    );
}

#[test]
fn every_deny_code_is_distinct() {
    let codes: std::collections::HashSet<_> = DenyCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(codes.len(), DenyCode::ALL.len());
}

#[test]
fn check_order_is_freeze_key_owner_asset_destination() {
    // A request wrong in every way reports the earliest check.
    let mut p = base().policy;
    let mut d = usdt(STRANGER, 0);
    d.envelope.fee_limit = i64::MAX;
    d.envelope.memo = vec![0; 100];
    if let Intent::Trc20(t) = &mut d.intent {
        t.token = addr(STRANGER);
        t.owner = addr(STRANGER);
    }
    assert_eq!(code(&p, &d), Some(DenyCode::OwnerMismatch));
    if let Intent::Trc20(t) = &mut d.intent {
        t.owner = addr(KEY);
    }
    assert_eq!(code(&p, &d), Some(DenyCode::AssetNotAllowed));
    if let Intent::Trc20(t) = &mut d.intent {
        t.token = addr(NILE_USDT);
    }
    assert_eq!(code(&p, &d), Some(DenyCode::DestinationNotAllowed));
    if let Intent::Trc20(t) = &mut d.intent {
        t.to = addr(EXCHANGE);
    }
    assert_eq!(code(&p, &d), Some(DenyCode::ZeroAmount));
    if let Intent::Trc20(t) = &mut d.intent {
        t.amount = U256::from(601 * U);
    }
    assert_eq!(code(&p, &d), Some(DenyCode::OverPerTxMax));
    if let Intent::Trc20(t) = &mut d.intent {
        t.amount = U256::ONE;
    }
    assert_eq!(code(&p, &d), Some(DenyCode::FeeLimitTooHigh));
    p.keys[0].frozen = true;
    assert_eq!(code(&p, &d), Some(DenyCode::Frozen));
}

// ---------------------------------------------------------------- CLI

fn run(cmd: PolicyCommand) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let rc = run_policy(cmd, &mut out, &mut err);
    (
        rc,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn cli_check_hash_explain() {
    let nile = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/nile.toml");
    let (rc, out, _) = run(PolicyCommand::Check { file: nile.clone() });
    assert_eq!(rc, 0);
    assert!(out.contains("OK"));
    let (rc, out, _) = run(PolicyCommand::Hash { file: nile.clone() });
    assert_eq!(rc, 0);
    assert_eq!(
        out.trim(),
        hex::encode(hash_bytes(&std::fs::read(&nile).unwrap()))
    );
    let (rc, out, _) = run(PolicyCommand::Explain { file: nile });
    assert_eq!(rc, 0);
    assert!(
        out.contains("EXAMPLE exchange hot wallet")
            && out.contains("USDT: at most 10000 (10000000000 base units) per transaction"),
        "{out}"
    );

    let dir = std::env::temp_dir().join(format!("policy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        with("version = 1", "version = 3").replacen("max = \"3000\"", "max = 3000", 1),
    )
    .unwrap();
    let (rc, _, err) = run(PolicyCommand::Check { file: bad.clone() });
    assert_ne!(rc, 0);
    assert!(
        err.contains("bad.toml:1:11:") && err.contains("2 problem(s)"),
        "{err}"
    );
    let (rc, _, _) = run(PolicyCommand::Explain { file: bad.clone() });
    assert_ne!(rc, 0);
    // Hash identifies even a broken file.
    assert_eq!(run(PolicyCommand::Hash { file: bad }).0, 0);
    assert_ne!(
        run(PolicyCommand::Hash {
            file: dir.join("none")
        })
        .0,
        0
    );
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------- robustness

fn any_address() -> impl Strategy<Value = Address> {
    prop_oneof![
        Just(addr(KEY)),
        Just(addr(OTHER_KEY)),
        Just(addr(EXCHANGE)),
        Just(addr(TREASURY)),
        Just(addr(NILE_USDT)),
        any::<[u8; 20]>().prop_map(Address::from_evm),
    ]
}

prop_compose! {
    fn any_decoded()(
        owner in any_address(), to in any_address(), token in any_address(),
        is_trx in any::<bool>(), small in any::<u64>(), big in any::<[u8; 32]>(), use_big in any::<bool>(),
        expiration in any::<i64>(), timestamp in any::<i64>(), fee_limit in any::<i64>(),
        memo in proptest::collection::vec(any::<u8>(), 0..20),
    ) -> Decoded {
        let intent = if is_trx {
            Intent::Trx(TrxTransfer { owner, to, amount: small })
        } else {
            let amount = if use_big { U256::from_be_bytes(big) } else { U256::from(small) };
            Intent::Trc20(Trc20Transfer { owner, token, to, amount })
        };
        Decoded {
            envelope: Envelope { expiration, timestamp, fee_limit, memo, ..envelope() },
            intent,
        }
    }
}

/// Usage values anywhere in U256, including MAX.
struct Fixed(U256);
impl Usage for Fixed {
    fn used(&self, _: &Address, _: &Asset, _: Option<&Address>, _: u64, _: i64) -> U256 {
        self.0
    }
}

proptest! {
    #[test]
    fn evaluate_never_panics(d in any_decoded(), key in any_address(), now in any::<i64>(), used in any::<[u8; 32]>()) {
        let p = base().policy;
        let _ = p.evaluate(&Request { key: &key, decoded: &d, now_ms: now, deposit_index: None }, &Fixed(U256::from_be_bytes(used)));
    }

    #[test]
    fn loader_never_panics(s in "\\PC{0,300}") {
        let _ = parse(&s, "fuzz.toml");
    }

    #[test]
    fn loader_never_panics_on_mutated_base(at in 0usize..2000, ch in "\\PC{0,3}") {
        let mut t = BASE.to_owned();
        let mut at = at.min(t.len());
        while !t.is_char_boundary(at) { at -= 1; }
        t.insert_str(at, &ch);
        let _ = parse(&t, "fuzz.toml");
    }
}

// ---------------------------------------------------------------- large allowlists

/// What a load yields, comparable: the policy or every problem.
fn outcome(
    r: Result<super::load::Parsed, PolicyLoadError>,
) -> Result<(u32, String, Policy), Vec<Problem>> {
    r.map(|p| (p.version, p.name, p.policy))
        .map_err(|e| e.problems)
}

/// Parsing section by section must give exactly what the same checks give on the whole
/// file parsed as one `toml` tree: same policy, or same problems at the same lines and
/// columns. A file `toml` itself refuses is refused with syntax problems only.
fn assert_same_as_whole(t: &str) {
    let whole = outcome(super::load::load_whole(t, "t.toml"));
    let sections = outcome(super::load::load(t, "t.toml"));
    if toml_refuses(t) {
        assert!(
            only_syntax(&whole) && only_syntax(&sections),
            "both loads must report syntax problems only for:\n{t}\nwhole: {whole:?}\nsections: {sections:?}"
        );
    } else {
        assert_eq!(sections, whole, "section and whole loads differ for:\n{t}");
    }
}

fn toml_refuses(t: &str) -> bool {
    !toml::de::DeTable::parse_recoverable(t).1.is_empty()
}

fn only_syntax<T>(r: &Result<T, Vec<Problem>>) -> bool {
    matches!(r, Err(ps) if !ps.is_empty() && ps.iter().all(|p| p.code == ProblemCode::Syntax))
}

/// BASE with `n` more destinations for the hot key, after the two it has.
fn with_destinations(n: usize) -> String {
    let second = "\n[[key]]\naddress = \"TSgT";
    let mut extra = tron_testkit::big_policy::Destinations {
        count: n,
        tail: tron_testkit::big_policy::Destinations::tail_byte(0xa5),
        label: "customer",
        assets: &["TRX", "USDT"],
        per_tx_max: &[("TRX", "5"), ("USDT", "10")],
        windows: &[tron_testkit::big_policy::Window {
            asset: "USDT",
            window: "24h",
            max: "1000",
        }],
    }
    .policy("");
    extra.push_str(second);
    BASE.replacen(second, &extra, 1)
}

/// Asserts that `t` is refused with a problem of `code` on the line of `marker`.
fn expect_at(t: &str, code: ProblemCode, marker: &str) {
    let ps = problems(t);
    let line = line_of(t, marker, 0);
    assert!(
        ps.iter().any(|p| p.code == code && p.line == line),
        "expected {code:?} on line {line} in:\n{t}\ngot {ps:?}"
    );
}

#[test]
fn split_load_matches_whole_load() {
    let big = with_destinations(3);
    assert_same_as_whole(BASE);
    assert_same_as_whole(&big);
    let exchange_section = "[[key.destination]]\naddress = \"TFMvmdXpeTUadpGe54SPqb2uA8TA7F6acd\"";
    for (from, to) in [
        // Problems inside sections, in the first and later sections of a run.
        ("label = \"customer 2\"", "label = \"customer 2\"\nextra = 1"),
        ("label = \"customer 0\"", "label = 5"),
        ("per_tx_max = { TRX = \"5\", USDT = \"10\" }\nwindows = [{ asset = \"USDT\", window = \"24h\", max = \"1000\" }]\n\n[[key]]", "per_tx_max = { TRX = \"5\", USDT = \"0\" }\n\n[[key]]"),
        // A destination listed twice, across sections.
        ("label = \"customer 1\"", "label = \"customer 1\"\n[[key.destination]]\naddress = \"TB7Mbv7ARbZELRJWDohVbVYsFp3Ci1ZNrU\"\nlabel = \"again\"\nassets = [\"TRX\"]\nper_tx_max = { TRX = \"1\" }"),
        // Syntax errors inside a section, including an unclosed string and a key twice.
        ("label = \"customer 1\"", "label = \"customer 1"),
        ("label = \"customer 1\"", "label = \"customer 1\"\nlabel = \"x\""),
        ("label = \"customer 2\"", "label = \"\"\"customer 2"),
        // A key that lists destinations inline and as sections.
        ("label = \"hot key\"", "label = \"hot key\"\ndestination = 1"),
        (exchange_section, "[ [key.destination] ]\naddress = \"TFMvmdXpeTUadpGe54SPqb2uA8TA7F6acd\""),
        // A multi-line array whose lines start with '['.
        ("label = \"customer 0\"", "label = \"customer 0\"\nx = [\n[1],\n[[2]]]"),
        // Text after a header on its line.
        (exchange_section, "[[key.destination]] x = 1\naddress = \"TFMvmdXpeTUadpGe54SPqb2uA8TA7F6acd\""),
        // Unknown asset and a problem in a key section between runs.
        ("assets = [\"TRX\", \"USDT\"]\nper_tx_max = { TRX = \"5\", USDT = \"10\" }", "assets = [\"TRX\", \"DOGE\"]\nper_tx_max = { TRX = \"5\", USDT = \"10\" }"),
        // Headers for tables inside a section, right after it (they stay in its section).
        ("label = \"customer 2\"", "label = \"customer 2\"\n[key.destination.per_tx_max]"),
        ("label = \"customer 2\"", "label = \"customer 2\"\n[key.destination]"),
        ("label = \"hot key\"", "label = \"hot key\"\n[[key.windows]]\nasset = \"TRX\""),
        ("per_tx_max = { TRX = \"5\", USDT = \"10\" }\nwindows = [{ asset = \"USDT\", window = \"24h\", max = \"1000\" }]\n\n[[key]]", "per_tx_max = { TRX = \"5\", USDT = \"10\" }\n[[key.destination.windows]]\nasset = \"USDT\"\nwindow = \"24h\"\nmax = \"1000\"\n\n[[key]]"),
        // An unknown top-level section.
        ("[global]", "[limits]\nx = 1\n[global]"),
        // [global] twice, and a destination before any key.
        ("[[token]]\nsymbol = \"USDM\"", "[global]\n[[token]]\nsymbol = \"USDM\""),
        ("[[token]]\nsymbol = \"USDM\"", "[[key.destination]]\n[[token]]\nsymbol = \"USDM\""),
    ] {
        let t = big.replacen(from, to, 1);
        assert_ne!(t, big, "{from:?} not found");
        assert_same_as_whole(&t);
    }

    // A header for a table inside a section that does not directly follow it (`toml` would
    // still find the section) is reported at the header.
    let t = format!("{big}\n[[token]]\nsymbol = \"USDX\"\ncontract = \"{STRANGER}\"\ndecimals = 2\n[key.destination.per_tx_max]\nTRX = \"1\"\n");
    assert!(!toml_refuses(&t));
    expect_at(&t, ProblemCode::Syntax, "[key.destination.per_tx_max]");
    assert_eq!(problems(&t).len(), 1);
}

#[test]
fn sections_can_come_in_any_order() {
    // [global] and the tokens after the keys; one key's destinations after another's token.
    let head_end = BASE.find("[global]").unwrap();
    let keys_at = BASE.find("[[key]]").unwrap();
    let t = format!(
        "{}{}\n{}",
        &BASE[..head_end],
        &BASE[keys_at..],
        &BASE[head_end..keys_at]
    );
    let moved = parse(&t, "moved.toml").unwrap();
    assert_eq!(moved.policy, base().policy);
    assert_same_as_whole(&t);
    // A destination after a token section still belongs to the last key above it.
    let late = format!(
        "{BASE}\n[[token]]\nsymbol = \"USDX\"\ncontract = \"{STRANGER}\"\ndecimals = 2\n\n[[key.destination]]\naddress = \"{EXCHANGE}\"\nlabel = \"late\"\nassets = [\"TRX\"]\nper_tx_max = {{ TRX = \"1\" }}\n"
    );
    let p = parse(&late, "late.toml").unwrap();
    let frozen_key = p.policy.key(&addr(OTHER_KEY)).unwrap();
    assert_eq!(frozen_key.destinations.len(), 1);
    assert_eq!(p.policy.assets.len(), 4);
    assert_same_as_whole(&late);
}

#[test]
fn large_allowlist_loads_with_lines_of_late_problems() {
    // 100,000 destinations are measured by `benches/policy_load.rs`; debug builds check 10,000.
    let n = if cfg!(debug_assertions) {
        10_000
    } else {
        100_000
    };
    let t = with_destinations(n);
    let p = parse(&t, "big.toml").unwrap();
    let hot = p.policy.key(&addr(KEY)).unwrap();
    assert_eq!(hot.destinations.len(), n + 2);
    let last = &hot.destinations[n + 1];
    assert_eq!(last.label, format!("customer {}", n - 1));
    assert_eq!(hot.destination(&last.address), Some(last));
    // A problem in the last section is reported at its own line.
    let bad = t.replacen(&format!("label = \"customer {}\"", n - 1), "label = 7", 1);
    let ps = problems(&bad);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(ps[0].code, ProblemCode::WrongType);
    assert_eq!(ps[0].line, line_of(&bad, "label = 7", 0));
    assert_eq!(ps[0].column, "label = ".len() + 1);
}

proptest! {
    #[test]
    fn split_load_matches_whole_load_on_mutations(
        at in 0usize..3000,
        ch in prop_oneof![
            "\\PC{0,3}".boxed(),
            "[\\[\\]{}\"'=.,#\n a-z]{1,4}".boxed(),
            Just("\n[[key.destination]]\n".to_owned()).boxed(),
            Just("\n[key.destination.x]\n".to_owned()).boxed(),
        ],
    ) {
        let mut t = with_destinations(3);
        let mut at = at.min(t.len());
        while !t.is_char_boundary(at) { at -= 1; }
        t.insert_str(at, &ch);
        let sections = outcome(super::load::load(&t, "t.toml"));
        if toml_refuses(&t) {
            prop_assert!(only_syntax(&sections), "{:?}", sections);
            prop_assert!(only_syntax(&outcome(super::load::load_whole(&t, "t.toml"))));
        } else if super::load::has_foreign_header(&t) {
            prop_assert!(
                matches!(&sections, Err(ps) if ps.iter().any(|p| matches!(p.code, ProblemCode::Syntax | ProblemCode::UnknownField))),
                "{:?}", sections
            );
        } else {
            prop_assert_eq!(sections, outcome(super::load::load_whole(&t, "t.toml")));
        }
    }
}

// ---------------------------------------------------------------- callers

/// BASE's caller section replaced by `callers`.
fn with_callers(callers: &str) -> String {
    with(
        "[[caller]]\nname = \"payments\"\nunix_uid = 1000\nrpcs = [\"Sign\", \"Evaluate\"]\nall_keys = true\n",
        callers,
    )
}

const PIN: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
/// An Ed25519 public key made by `ssh-keygen -t ed25519` (private half discarded).
const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL51WHfawnvDkLIbzegSTnDtLyXypztBX20IhV5RSw+B exporter";

#[test]
fn callers_load_with_every_kind_of_identity() {
    let t = with_callers(&format!(
        r#"[[caller]]
name = "backend"
tls_pin = ["sha256:{PIN}"]
tls_san = ["uri:spiffe://example.org/payments", "dns:payments.internal", "ip:10.0.0.7"]
tls_subject = "CN=payments,O=Example"
rpcs = ["Sign", "Evaluate", "ListKeys"]
keys = ["{KEY}"]

[[caller]]
name = "ops"
unix_uid = [0, 1000]
insecure_loopback = true
batch_key = "{ED25519}"
rpcs = ["GetPolicy", "ReadPolicyText"]
"#
    ));
    let lp = parse(&t, "t.toml").unwrap();
    let c = &lp.policy.callers;
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].name, "backend");
    assert_eq!(c[0].recognised_by.len(), 5);
    assert_eq!(c[0].keys, KeyGrant::Listed(vec![addr(KEY)]));
    assert!(c[0].may_call(Rpc::ListKeys) && !c[0].may_call(Rpc::GetPolicy));
    assert_eq!(c[1].recognised_by.len(), 4);
    assert!(c[1].recognised_by.contains(&Recognition::InsecureLoopback));
    let presented = Presented::Unix { uid: 0 };
    match lp.policy.recognise(&presented) {
        Recognised::Caller { caller, by } => {
            assert_eq!(caller.name, "ops");
            assert_eq!(by.to_string(), "unix_uid=0");
        }
        other => panic!("{other:?}"),
    }
    // explain says who may ask for what, in words.
    let text = lp.explain();
    for needle in [
        "Caller \"backend\"",
        &format!("SHA-256 {PIN}"),
        "naming \"uri:spiffe://example.org/payments\"",
        "a process of uid 1000 on the Unix socket",
        "ANY process that reaches the plaintext loopback TCP listener",
        "May call: Sign, Evaluate, ListKeys.",
        &format!("May ask signatures (within the limits above) of:\n    {KEY} (\"hot key\")"),
        "Caller \"ops\"",
        "May call: GetPolicy, ReadPolicyText.",
        "Keys: none.",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}

#[test]
fn a_policy_without_callers_is_refused() {
    let t = with_callers("");
    expect(&t, ProblemCode::NoCallers, 1);
}

#[test]
fn caller_problems_each_have_their_code_and_line() {
    let caller = |body: &str| with_callers(&format!("[[caller]]\nname = \"c\"\n{body}\n"));
    let dup_marker = format!("\"{KEY}\"]");
    let cases: Vec<(String, ProblemCode, &str)> = vec![
        (
            caller("tls_pin = \"abc\"\nrpcs = [\"GetPolicy\"]"),
            ProblemCode::BadIdentity,
            "\"abc\"",
        ),
        (
            caller("tls_san = \"spiffe://x\"\nrpcs = [\"GetPolicy\"]"),
            ProblemCode::BadIdentity,
            "spiffe://x",
        ),
        (
            caller("tls_san = \"ip:300.1.1.1\"\nrpcs = [\"GetPolicy\"]"),
            ProblemCode::BadIdentity,
            "ip:300",
        ),
        (
            caller("tls_subject = \" \"\nrpcs = [\"GetPolicy\"]"),
            ProblemCode::BadIdentity,
            "tls_subject",
        ),
        (
            caller("unix_uid = -1\nrpcs = [\"GetPolicy\"]"),
            ProblemCode::BadIdentity,
            "unix_uid",
        ),
        (
            caller("unix_uid = \"root\"\nrpcs = [\"GetPolicy\"]"),
            ProblemCode::BadIdentity,
            "unix_uid",
        ),
        (
            caller("batch_key = \"ecdsa-sha2-nistp256 AAAA\"\nrpcs = [\"GetPolicy\"]"),
            ProblemCode::BadIdentity,
            "batch_key",
        ),
        (
            caller(&format!(
                "batch_key = \"{}\"\nrpcs = [\"GetPolicy\"]",
                crate::test_util::off_curve_ed25519_line()
            )),
            ProblemCode::BadIdentity,
            "batch_key",
        ),
        (
            caller("unix_uid = 5\nrpcs = [\"Signn\"]"),
            ProblemCode::UnknownRpc,
            "Signn",
        ),
        (
            caller("unix_uid = 5\nrpcs = []"),
            ProblemCode::MissingField,
            "[[caller]]",
        ),
        (
            caller("unix_uid = 5\nrpcs = [\"Sign\"]"),
            ProblemCode::MissingField,
            "[[caller]]",
        ),
        (
            caller(&format!(
                "unix_uid = 5\nrpcs = [\"Sign\"]\nkeys = [\"{STRANGER}\"]"
            )),
            ProblemCode::UnknownKey,
            STRANGER,
        ),
        (
            caller(&format!(
                "unix_uid = 5\nrpcs = [\"Sign\"]\nkeys = [\"{KEY}\", \"{KEY}\"]"
            )),
            ProblemCode::DuplicateKey,
            &dup_marker,
        ),
        (
            caller(&format!(
                "unix_uid = 5\nrpcs = [\"Sign\"]\nkeys = [\"{KEY}\"]\nall_keys = true"
            )),
            ProblemCode::OutOfRange,
            "all_keys",
        ),
        (
            caller("rpcs = [\"GetPolicy\"]"),
            ProblemCode::MissingField,
            "[[caller]]",
        ),
        (
            caller("insecure_loopback = false\nrpcs = [\"GetPolicy\"]"),
            ProblemCode::OutOfRange,
            "insecure_loopback",
        ),
        (
            caller("unix_uid = 5\nrpcs = [\"GetPolicy\"]\nwho = 1"),
            ProblemCode::UnknownField,
            "who",
        ),
    ];
    for (t, code, marker) in &cases {
        expect_at(t, *code, marker);
        let ps = problems(t);
        assert!(ps.iter().all(|p| p.code == *code), "{code:?}: {ps:?}");
    }
}

/// A name used twice, or one identity claimed by two callers (or listed twice in one), is
/// refused: every audit record's caller name must mean one thing.
#[test]
fn a_name_or_identity_names_one_caller() {
    let two = |a: &str, b: &str| {
        with_callers(&format!(
            "[[caller]]\nname = \"a\"\n{a}\nrpcs = [\"GetPolicy\"]\n\n[[caller]]\nname = \"b\"\n{b}\nrpcs = [\"GetPolicy\"]\n"
        ))
    };
    let t = two("unix_uid = 5", "unix_uid = 5");
    // Reported where the second caller claims it.
    let second = t.rfind("unix_uid = 5").unwrap();
    expect(
        &t,
        ProblemCode::DuplicateCaller,
        t[..second].matches('\n').count() + 1,
    );
    let t = two(
        &format!("tls_pin = \"{PIN}\""),
        &format!("tls_pin = \"sha256:{}\"", PIN.to_uppercase()),
    );
    let ps = problems(&t);
    assert!(
        ps.iter().all(|p| p.code == ProblemCode::DuplicateCaller) && ps.len() == 1,
        "{ps:?}"
    );
    assert!(
        ps[0].message.contains("already recognises caller \"a\""),
        "{ps:?}"
    );
    let t = with_callers(
        "[[caller]]\nname = \"a\"\nunix_uid = 1\nrpcs = [\"GetPolicy\"]\n[[caller]]\nname = \"a\"\nunix_uid = 2\nrpcs = [\"GetPolicy\"]\n",
    );
    let ps = problems(&t);
    assert!(
        ps.len() == 1 && ps[0].code == ProblemCode::DuplicateCaller,
        "{ps:?}"
    );
    let t = with_callers("[[caller]]\nname = \"a\"\nunix_uid = [1, 1]\nrpcs = [\"GetPolicy\"]\n");
    let ps = problems(&t);
    assert!(
        ps.len() == 1 && ps[0].code == ProblemCode::DuplicateCaller,
        "{ps:?}"
    );
}

/// Callers written inline at the top (`caller = [...]`) load like sections.
#[test]
fn callers_may_be_written_inline() {
    let t = with_callers("").replacen(
        "network = \"nile\"\n",
        "network = \"nile\"\ncaller = [{ name = \"x\", unix_uid = 3, rpcs = [\"ListKeys\"] }]\n",
        1,
    );
    let lp = parse(&t, "t.toml").unwrap();
    assert_eq!(lp.policy.callers[0].name, "x");
}

// ---------------------------------------------------------------- approvals

/// Public keys made with ssh-keygen for these tests (private halves discarded).
const BOB: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVgmrC6egWxmD9b0ZXcyNcYJls1nsTAPk27hmufwmFV bob";
const CAROL: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPSo97OTW6kT+hr9J5XLCJ/OmMveWWrmcOKuZdAJv39F carol";
const RISK_EC: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPmPx1SDZOS5AhBjEmwDlkIGxHDVC9XaY0JLIP/Po7PZfOjPyJYW8vTiuCkq6ss5mXzGlUfDgtXzKncjX95zWpE= risk";

/// A FIDO2 `sk-ssh-ed25519@openssh.com` public key line (no authenticator here to make one).
fn sk_key() -> String {
    let sk = ssh_key::public::SkEd25519::new(
        ssh_key::private::Ed25519Keypair::from_seed(&[7; 32]).public,
        "ssh:".to_owned(),
    );
    ssh_key::PublicKey::from(ssh_key::public::KeyData::SkEd25519(sk))
        .to_openssh()
        .unwrap()
}

fn with_approvals(sections: &str) -> String {
    format!("{BASE}\n{sections}")
}

fn approvers() -> String {
    format!(
        r#"
[[approver]]
name = "Bob"
groups = ["treasury"]
key = "{BOB}"

[[approver]]
name = "Carol"
groups = ["treasury", "risk"]
key = "{CAROL}"
caller = "payments"

[[approver]]
name = "Risk officer"
groups = ["risk"]
key = "{RISK_EC}"

[[approver]]
name = "Dana (hardware key)"
groups = ["treasury"]
key = "{}"
"#,
        sk_key()
    )
}

#[test]
fn approval_tiers_load_and_explain_themselves() {
    let t = with_approvals(&format!(
        r#"{}
[[approval]]
asset = "USDT"
above = "1000"
require = {{ treasury = 2 }}

[[approval]]
asset = "USDT"
above = "2000.5"
destination = "{EXCHANGE}"
require = {{ treasury = 2, risk = 1 }}
"#,
        approvers()
    ));
    let lp = parse(&t, "t.toml").unwrap();
    let p = &lp.policy;
    assert_eq!(p.approvers.len(), 4);
    assert_eq!(p.approvers[1].caller.as_deref(), Some("payments"));
    assert_eq!(
        p.approvers[3].key.data().algorithm().to_string(),
        "sk-ssh-ed25519@openssh.com"
    );
    let usdt = Asset::Token(addr(NILE_USDT));
    let q = |to: &str, units: u64| p.quorum(&addr(KEY), &usdt, &addr(to), U256::from(units));
    assert!(
        q(EXCHANGE, 1_000_000_000).is_empty(),
        "1000 USDT is not above 1000"
    );
    assert_eq!(
        q(EXCHANGE, 1_000_000_001).groups,
        vec![("treasury".into(), 2)]
    );
    assert_eq!(
        q(EXCHANGE, 2_000_500_001).groups,
        vec![("treasury".into(), 2), ("risk".into(), 1)]
    );
    assert_eq!(
        q(TREASURY, 2_000_500_001).groups,
        vec![("treasury".into(), 2)]
    );
    let fp = p.approvers[0].fingerprint.clone();
    assert!(fp.starts_with("SHA256:"));
    assert_eq!(p.approver(&fp).unwrap().name, "Bob");
    let text = lp.explain();
    for needle in [
        "USDT above 1000 (1000000000 base units) (approval rule 1): needs 2 of \"treasury\".",
        &format!("to {EXCHANGE} (approval rule 2): needs 2 of \"treasury\" and 1 of \"risk\"."),
        "\"Carol\", in treasury, risk",
        "never approves requests of caller \"payments\"",
        "(ecdsa-sha2-nistp256)",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    assert!(base().explain().contains("Approvals: none required."));
}

#[test]
fn approval_problems_each_have_their_code() {
    let rule = |body: &str| with_approvals(&format!("{}\n[[approval]]\n{body}\n", approvers()));
    let stranger_key = format!("key = \"{STRANGER}\"");
    let cases: Vec<(String, ProblemCode, &str)> = vec![
        (
            rule("asset = \"USDT\"\nabove = \"10\"\nrequire = { treasury = 4 }"),
            ProblemCode::ApprovalUnreachable,
            "treasury = 4",
        ),
        (
            rule("asset = \"USDT\"\nabove = \"10\"\nrequire = { audit = 1 }"),
            ProblemCode::ApprovalUnreachable,
            "audit = 1",
        ),
        (
            rule("asset = \"USDT\"\nabove = \"10\"\nrequire = { treasury = 0 }"),
            ProblemCode::OutOfRange,
            "treasury = 0",
        ),
        (
            rule("asset = \"USDT\"\nabove = 10\nrequire = { treasury = 1 }"),
            ProblemCode::WrongType,
            "above = 10",
        ),
        (
            rule("asset = \"USDT\"\nabove = \"1.0000001\"\nrequire = { treasury = 1 }"),
            ProblemCode::BadAmount,
            "1.0000001",
        ),
        (
            rule("asset = \"DOGE\"\nabove = \"1\"\nrequire = { treasury = 1 }"),
            ProblemCode::UndeclaredAsset,
            "DOGE",
        ),
        (
            rule(&format!("asset = \"USDT\"\nabove = \"1\"\nkey = \"{STRANGER}\"\nrequire = {{ treasury = 1 }}")),
            ProblemCode::UnknownKey,
            &stranger_key,
        ),
        (
            rule("asset = \"USDT\"\nabove = \"1\"\nrequire = {}"),
            ProblemCode::MissingField,
            "[[approval]]",
        ),
    ];
    for (t, code, marker) in &cases {
        expect_at(t, *code, marker);
    }
    let approver = |body: &str| with_approvals(&format!("[[approver]]\n{body}\n"));
    let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCnU2rwyjgvQQ1q5xq2GbHF";
    for (t, code, marker) in [
        (
            approver(&format!("name = \"x\"\ngroups = [\"g\"]\nkey = \"{rsa}\"")),
            ProblemCode::BadIdentity,
            "key = ",
        ),
        (
            approver("name = \"x\"\ngroups = [\"g\"]\nkey = \"hello\""),
            ProblemCode::BadIdentity,
            "key = ",
        ),
        (
            approver(&format!(
                "name = \"x\"\ngroups = [\"g\"]\nkey = \"{}\"",
                crate::test_util::off_curve_ed25519_line()
            )),
            ProblemCode::BadIdentity,
            "key = ",
        ),
        (
            approver(&format!("name = \"x\"\ngroups = []\nkey = \"{BOB}\"")),
            ProblemCode::MissingField,
            "[[approver]]",
        ),
        (
            approver(&format!(
                "name = \"x\"\ngroups = [\"g\"]\nkey = \"{BOB}\"\ncaller = \"nobody\""
            )),
            ProblemCode::UnknownCaller,
            "\"nobody\"",
        ),
        (
            with_approvals(&format!(
                "[[approver]]\nname = \"x\"\ngroups = [\"g\"]\nkey = \"{BOB}\"\n[[approver]]\nname = \"y\"\ngroups = [\"g\"]\nkey = \"{}\"\n",
                BOB.replace(" bob", " same key, other comment")
            )),
            ProblemCode::DuplicateApprover,
            "same key",
        ),
        (
            with_approvals(&format!(
                "[[approver]]\nname = \"x\"\ngroups = [\"g\"]\nkey = \"{BOB}\"\n[[approver]]\nname = \"x\"\ngroups = [\"g\"]\nkey = \"{CAROL}\"\n"
            )),
            ProblemCode::DuplicateApprover,
            "name = \"x\"\ngroups = [\"g\"]\nkey = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPSo",
        ),
    ] {
        expect_at(&t, code, marker);
    }
}

fn admin_line(seed: u8) -> String {
    ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]))
        .public_key()
        .to_openssh()
        .unwrap()
}

#[test]
fn policy_admins_are_read_and_checked_like_the_configs() {
    let section = |threshold: u32, entries: &str| {
        format!("{BASE}\n[policy_admins]\nthreshold = {threshold}\nadmins = [{entries}]\n")
    };
    let one =
        |name: &str, seed: u8| format!("{{ name = \"{name}\", key = \"{}\" }}, ", admin_line(seed));
    let t = section(2, &format!("{}{}", one("alice", 1), one("bob", 2)));
    let lp = parse(&t, "admins.toml").unwrap();
    let set = lp.policy.admins.expect("an admin set");
    assert_eq!(set.threshold, 2);
    let names: Vec<&str> = set.admins.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(base().policy.admins.is_none());
    // Inline is the same.
    let inline = BASE.replacen(
        "version = 1\n",
        &format!(
            "version = 1\npolicy_admins = {{ threshold = 1, admins = [{}] }}\n",
            one("alice", 1).trim_end_matches(", ")
        ),
        1,
    );
    assert_eq!(
        parse(&inline, "x")
            .unwrap()
            .policy
            .admins
            .unwrap()
            .threshold,
        1
    );

    let marker = "[policy_admins]";
    let t = section(3, &format!("{}{}", one("alice", 1), one("bob", 2)));
    expect_at(&t, ProblemCode::BadAdminSet, marker);
    let t = section(1, &format!("{}{}", one("alice", 1), one("alice", 2)));
    expect_at(&t, ProblemCode::BadAdminSet, marker);
    let t = section(1, &format!("{}{}", one("alice", 1), one("bob", 1)));
    expect_at(&t, ProblemCode::BadAdminSet, marker);
    let t = section(1, "{ name = \"alice\", key = \"ssh-rsa AAAA\" }");
    expect_at(&t, ProblemCode::BadIdentity, marker);
    let t = section(
        1,
        &format!(
            "{{ name = \"alice\", key = \"{}\", groups = [] }}",
            admin_line(1)
        ),
    );
    expect_at(&t, ProblemCode::UnknownField, "groups");
    let t = format!(
        "{}\n[policy_admins]\nthreshold = 1\nadmins = []\n",
        section(1, &one("a", 1))
    );
    expect_at(
        &t,
        ProblemCode::Syntax,
        "[policy_admins]\nthreshold = 1\nadmins = []",
    );
}

// ---------------------------------------------------------------- deposit accounts, gas keys

fn deposit_xpub(seed: u8) -> String {
    crate::keys::soft::hd::HdAccount::from_seed(&[seed; 32])
        .unwrap()
        .xpub()
        .to_text()
}

/// BASE with a deposit account, a gas key for it and a caller granted its keys.
fn with_deposits(account: &str, gas: &str, caller: &str) -> String {
    let xpub = deposit_xpub(1);
    format!(
        r#"{BASE}
[[deposit_account]]
name = "deposits"
xpub = "{xpub}"
first_index = 10
last_index = 20
collection = "{TREASURY}"
assets = ["USDT"]
{account}
[[key]]
address = "{STRANGER}"
label = "gas"
assets = ["TRX"]
windows = [{{ asset = "TRX", window = "24h", max = "30" }}]
gas_for = "deposits"
{gas}
[[caller]]
name = "sweeper"
unix_uid = 2000
rpcs = ["Sign"]
keys = ["{STRANGER}"]
{caller}
"#
    )
}

fn good_deposits() -> String {
    with_deposits(
        "",
        "gas_per_tx_max = \"5\"",
        "deposit_accounts = [\"deposits\"]",
    )
}

#[test]
fn deposit_accounts_and_gas_keys_load() {
    let t = good_deposits();
    let p = match parse(&t, "t.toml") {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let a = &p.policy.deposit_accounts[0];
    assert_eq!((a.first_index, a.last_index), (10, 20));
    assert_eq!(a.collection, addr(TREASURY));
    let gas = p
        .policy
        .key(&addr(STRANGER))
        .unwrap()
        .gas_for
        .clone()
        .unwrap();
    assert_eq!(gas.account, "deposits");
    assert_eq!(gas.per_tx_max, U256::from(5_000_000u64));
    assert_eq!(p.policy.callers[1].deposit_accounts, vec!["deposits"]);
    assert_same_as_whole(&t);
}

#[test]
fn deposit_account_problems() {
    let good = good_deposits();
    let xpub = deposit_xpub(1);
    for (from, to, code) in [
        (xpub.as_str(), "xpub-not-a-key", ProblemCode::BadXpub),
        ("last_index = 20", "last_index = 9", ProblemCode::OutOfRange),
        (
            "first_index = 10",
            "first_index = 2147483648",
            ProblemCode::OutOfRange,
        ),
        (
            "gas_for = \"deposits\"",
            "gas_for = \"elsewhere\"",
            ProblemCode::UnknownDepositAccount,
        ),
        (
            "deposit_accounts = [\"deposits\"]",
            "deposit_accounts = [\"elsewhere\"]",
            ProblemCode::UnknownDepositAccount,
        ),
        (
            "gas_per_tx_max = \"5\"",
            "gas_per_tx_max = \"0\"",
            ProblemCode::ZeroAmount,
        ),
        ("gas_per_tx_max = \"5\"", "", ProblemCode::MissingField),
    ] {
        let t = good.replacen(from, to, 1);
        assert_ne!(t, good, "{from}");
        let ps = problems(&t);
        assert!(
            ps.iter().any(|p| p.code == code),
            "{from} -> {to}: expected {code:?}, got {ps:?}"
        );
    }
    // The same account twice, by name and by key.
    let twice = format!(
        "name = \"deposits\"\nxpub = \"{xpub}\"\nfirst_index = 0\nlast_index = 1\ncollection = \"{TREASURY}\"\nassets = [\"USDT\"]"
    );
    let t = with_deposits(
        &format!("[[deposit_account]]\n{twice}\n"),
        "gas_per_tx_max = \"5\"",
        "",
    );
    let ps = problems(&t);
    assert_eq!(
        ps.iter()
            .filter(|p| p.code == ProblemCode::DuplicateDepositAccount)
            .count(),
        2,
        "{ps:?}"
    );
    // A gas key must be able to send TRX.
    let t = good.replacen(
        "assets = [\"TRX\"]\nwindows = [{ asset = \"TRX\", window = \"24h\", max = \"30\" }]\ngas_for",
        "assets = [\"USDT\"]\nwindows = [{ asset = \"USDT\", window = \"24h\", max = \"30\" }]\ngas_for",
        1,
    );
    assert_ne!(t, good);
    assert!(problems(&t)
        .iter()
        .any(|p| p.code == ProblemCode::MissingField));
}

#[test]
fn deposit_and_gas_requests_are_judged_by_the_derived_address() {
    let p = parse(&good_deposits(), "t.toml").unwrap().policy;
    let account = crate::keys::soft::hd::HdAccount::from_seed(&[1; 32]).unwrap();
    let d = |i: u32| account.xpub().address(i).unwrap();
    let owned = |owner: Address, mut t: Decoded| {
        match &mut t.intent {
            Intent::Trc20(x) => x.owner = owner,
            Intent::Trx(x) => x.owner = owner,
        }
        t
    };
    let judge = |key: Address, t: &Decoded, index: Option<u32>| {
        p.evaluate(
            &Request {
                key: &key,
                decoded: t,
                now_ms: NOW,
                deposit_index: index,
            },
            &MemUsage::default(),
        )
        .deny_code()
    };
    let sweep = owned(d(12), usdt(TREASURY, 7_000_000_000));
    assert_eq!(judge(d(12), &sweep, Some(12)), None);
    let elsewhere = owned(d(12), usdt(EXCHANGE, 1));
    assert_eq!(
        judge(d(12), &elsewhere, Some(12)),
        Some(DenyCode::DestinationNotAllowed)
    );
    let trx_sweep = owned(d(12), trx(TREASURY, 1));
    assert_eq!(
        judge(d(12), &trx_sweep, Some(12)),
        Some(DenyCode::AssetNotAllowed)
    );
    assert_eq!(
        judge(d(12), &sweep, Some(13)),
        Some(DenyCode::DepositAddressMismatch)
    );
    let outside = owned(d(21), usdt(TREASURY, 1));
    assert_eq!(
        judge(d(21), &outside, Some(21)),
        Some(DenyCode::DepositIndexOutOfRange)
    );
    assert_eq!(judge(d(12), &sweep, None), Some(DenyCode::UnknownKey));

    let gas = owned(addr(STRANGER), trx(&d(15).to_base58(), 5_000_000));
    assert_eq!(judge(addr(STRANGER), &gas, Some(15)), None);
    assert_eq!(
        judge(addr(STRANGER), &gas, Some(16)),
        Some(DenyCode::GasDestinationMismatch)
    );
    assert_eq!(
        judge(addr(STRANGER), &gas, Some(30)),
        Some(DenyCode::DepositIndexOutOfRange)
    );
    let too_much = owned(addr(STRANGER), trx(&d(15).to_base58(), 5_000_001));
    assert_eq!(
        judge(addr(STRANGER), &too_much, Some(15)),
        Some(DenyCode::OverPerTxMax)
    );
    assert_eq!(
        judge(addr(STRANGER), &gas, None),
        Some(DenyCode::DestinationNotAllowed)
    );
    let payout = trx(TREASURY, 1);
    assert_eq!(
        judge(addr(KEY), &payout, Some(15)),
        Some(DenyCode::DepositIndexUnexpected)
    );
}

#[test]
fn diff_reports_deposit_account_gas_and_grant_changes() {
    let old = parse(&good_deposits(), "old.toml").unwrap().policy;
    let changed = good_deposits()
        .replacen("last_index = 20", "last_index = 25", 1)
        .replacen(
            &format!("collection = \"{TREASURY}\""),
            &format!("collection = \"{EXCHANGE}\""),
            1,
        )
        .replacen("gas_per_tx_max = \"5\"", "gas_per_tx_max = \"6\"", 1)
        .replacen("deposit_accounts = [\"deposits\"]", "", 1);
    let new = parse(&changed, "new.toml").unwrap().policy;
    let texts: Vec<String> = super::diff::diff(&old, &new)
        .into_iter()
        .map(|c| c.text)
        .collect();
    for needle in [
        "index range",
        "10..=25",
        "collection address",
        EXCHANGE,
        "gas_for",
        "at most 6 TRX",
        "deposit accounts",
    ] {
        assert!(
            texts.iter().any(|t| t.contains(needle)),
            "{needle} not in {texts:#?}"
        );
    }
}
