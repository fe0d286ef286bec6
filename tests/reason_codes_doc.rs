//! The docs list exactly the signer's reason codes: the table in `policies/README.md` holds
//! every code of `ReasonCode::ALL` once with its category, and the README's `inspect` table
//! holds exactly the decode codes.

use std::collections::BTreeSet;

use tron_signer::reason::{Category, ReasonCode};

fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?} section"));
    let rest = &text[start + heading.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    &rest[..end]
}

/// Every `code` in backticks in the first column of the table rows of `text`.
fn first_column_codes(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let cell = l.split('|').nth(1).unwrap_or("");
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn category_name(c: Category) -> &'static str {
    match c {
        Category::Outcome => "outcome",
        Category::Request => "request",
        Category::Decode => "decode",
        Category::Caller => "caller",
        Category::Policy => "policy",
        Category::PolicyAdmin => "policy admin",
        Category::Approval => "approval",
        Category::Ledger => "ledger",
        Category::KeyBackend => "key backend",
    }
}

#[test]
fn policies_readme_lists_every_reason_code_once_with_its_category() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/README.md"))
        .unwrap();
    let table = section(&text, "## Reason codes");
    let mut listed = Vec::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let code = cells[1].trim_matches('`');
        let parsed: ReasonCode = code
            .parse()
            .unwrap_or_else(|e| panic!("policies/README.md lists {e}"));
        assert_eq!(
            cells[2],
            category_name(parsed.category()),
            "category of {code}"
        );
        assert!(!cells[3].is_empty(), "{code} has no meaning");
        listed.push(parsed);
    }
    let unique: BTreeSet<ReasonCode> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a code is listed twice");
    let all: BTreeSet<ReasonCode> = ReasonCode::ALL.iter().copied().collect();
    let missing: Vec<_> = all.difference(&unique).map(|c| c.as_str()).collect();
    assert!(missing.is_empty(), "not in policies/README.md: {missing:?}");
}

#[test]
fn readme_inspect_table_lists_exactly_the_decode_codes() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = section(&text, "## `inspect`");
    let listed: BTreeSet<String> = first_column_codes(table).into_iter().collect();
    let decode: BTreeSet<String> = ReasonCode::ALL
        .iter()
        .filter(|c| c.category() == Category::Decode)
        .map(|c| c.as_str().to_owned())
        .collect();
    assert_eq!(listed, decode);
}
