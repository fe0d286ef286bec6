//! No two modules of the signer import each other: among the modules under one parent, the
//! `use crate::…` / `super::…` references (outside test code) form no cycle, so each module
//! reads without opening the modules that use it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `src/a/b.rs` and `src/a/b/mod.rs` are module `a::b`; `src/lib.rs` is the crate root.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "bin") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code without comments and without its trailing `#[cfg(test)]` module (tests
/// may reach anywhere; doc comments may name any module).
fn non_test_code(text: &str) -> String {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Module paths that `text` (the code of module `here`) refers to.
fn references(here: &[String], text: &str) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|p| {
                p.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|p| !p.is_empty() && p.chars().next().is_some_and(|c| c.is_lowercase()))
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        let path = ident(&text[i + "crate::".len()..]);
        if !path.is_empty() {
            out.insert(path);
        }
    }
    for (i, _) in text.match_indices("super::") {
        // `super::super::x` counts its supers; only the first of a run starts a path.
        if text[..i].ends_with("super::") {
            continue;
        }
        let mut rest = &text[i..];
        let mut base = here.to_vec();
        while let Some(r) = rest.strip_prefix("super::") {
            base.pop();
            rest = r;
        }
        let mut path = base;
        path.extend(ident(rest));
        out.insert(path);
    }
    out
}

#[test]
fn sibling_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // Edges between sibling modules: (parent, from child, to child).
    let mut edges: BTreeMap<Vec<String>, BTreeSet<(String, String)>> = BTreeMap::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        if name == "tests.rs" || name == "test_util.rs" || name == "main.rs" {
            continue;
        }
        let here = module_of(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        for target in references(&here, &non_test_code(&text)) {
            // The first level where the two paths part: those are the sibling modules.
            let common = here.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common < here.len() && common < target.len() {
                edges
                    .entry(here[..common].to_vec())
                    .or_default()
                    .insert((here[common].clone(), target[common].clone()));
            }
        }
    }
    let mut cycles = Vec::new();
    for (parent, set) in &edges {
        for (a, b) in set {
            // Any path from b back to a closes a cycle.
            let mut stack = vec![b.clone()];
            let mut seen = BTreeSet::new();
            while let Some(n) = stack.pop() {
                if &n == a {
                    cycles.push(format!("{}: {a} -> {b} -> ... -> {a}", parent.join("::")));
                    break;
                }
                if seen.insert(n.clone()) {
                    stack.extend(set.iter().filter(|(x, _)| *x == n).map(|(_, y)| y.clone()));
                }
            }
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}
