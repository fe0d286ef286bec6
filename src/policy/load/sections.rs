//! Cuts a policy file into its top-level sections, so each is parsed alone and dropped.
//!
//! The `toml` parse tree of a whole 100,000-destination policy is about 30 times the file
//! size. A section (a header line plus the lines up to the next header) is a table of its
//! own, so the loader parses one at a time at its place in the walk. Headers are found with
//! the TOML lexer, which is context-free: text inside a string or a multi-line array is never
//! taken for a header. Spans of a section parsed alone start at [`Section::start`].
//! [`Plan`] sorts the sections by what reads them.

use std::ops::Range;

use toml_parser::lexer::TokenKind as T;
use toml_parser::Source;

/// What a section's header names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Header {
    /// The text before the first header.
    Root,
    /// `[global]`
    Global,
    /// `[[token]]`
    Token,
    /// `[[key]]`
    Key,
    /// `[[key.destination]]`: a destination of the last `[[key]]` above it.
    Destination,
    /// `[[caller]]`
    Caller,
    /// `[[approver]]`
    Approver,
    /// `[[approval]]`
    Approval,
    /// `[policy_admins]`
    PolicyAdmins,
    /// `[[deposit_account]]`
    DepositAccount,
    /// Any other header (boxed: a section list can be 100,000 long).
    Other(Box<Foreign>),
}

/// A header the format does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Foreign {
    /// The header, brackets included.
    pub(super) span: Range<usize>,
    /// Its keys with their spans; `None` when it is not a plain header (the section's
    /// parse then reports the syntax error).
    pub(super) path: Option<Path>,
}

/// A header's keys with their spans.
pub(super) type Path = Vec<(String, Range<usize>)>;

/// One section: `range` covers its header line and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Section {
    pub(super) header: Header,
    pub(super) range: Range<usize>,
    /// Where the header starts (its first bracket); 0 for the root section.
    pub(super) header_at: usize,
}

impl Section {
    /// File offset that spans from this section's own parse are relative to.
    pub(super) fn start(&self) -> usize {
        self.range.start
    }
}

/// The sections of a file sorted by what reads them.
///
/// Destination sections are only counted here: the walk finds a key's again by lexing
/// from the end of its `[[key]]` section to the next one, so a 100,000-destination file
/// never holds a list of them.
pub(super) struct Plan {
    pub(super) root: Section,
    /// `[global]`, `[[token]]`, destinations above every `[[key]]`, and headers the format
    /// does not have, in file order.
    others: Vec<Section>,
    /// Each `[[key]]` section and how many destination sections follow it.
    pub(super) keys: Vec<(Section, usize)>,
}

impl Plan {
    pub(super) fn new(mut all: impl Iterator<Item = Section>) -> Plan {
        let root = all.next().unwrap_or(Section {
            header: Header::Root,
            range: 0..0,
            header_at: 0,
        });
        let mut plan = Plan {
            root,
            others: Vec::new(),
            keys: Vec::new(),
        };
        for s in all {
            match (&s.header, plan.keys.last_mut()) {
                (Header::Key, _) => {}
                (Header::Destination, Some((_, n))) => {
                    *n += 1;
                    continue;
                }
                _ => {
                    plan.others.push(s);
                    continue;
                }
            }
            plan.keys.push((s, 0));
        }
        plan
    }

    pub(super) fn with(&self, header: Header) -> impl Iterator<Item = &Section> {
        self.others.iter().filter(move |s| s.header == header)
    }

    /// Destination sections above every `[[key]]`, and headers the format does not have.
    pub(super) fn strays(&self) -> impl Iterator<Item = &Section> {
        self.others
            .iter()
            .filter(|s| matches!(s.header, Header::Destination | Header::Other(_)))
    }
}

/// The destination sections of the key whose section is `key`.
pub(super) fn destinations_of<'t>(
    text: &'t str,
    key: &Section,
) -> impl Iterator<Item = Section> + 't {
    sections_after(text, key.range.end)
        .take_while(|s| s.header != Header::Key)
        .filter(|s| s.header == Header::Destination)
}

/// Every section of `text` in file order, the root section first (possibly empty).
pub(super) fn sections(text: &str) -> Sections<'_> {
    Sections::from(text, 0, Some((Header::Root, 0, 0)))
}

/// The sections that start at or after `at`, which must be where a section starts.
pub(super) fn sections_after(text: &str, at: usize) -> Sections<'_> {
    Sections::from(text, at, None)
}

/// Sections found while lexing; each is yielded once the next header (or the end) is seen.
pub(super) struct Sections<'t> {
    text: &'t str,
    base: usize,
    lexer: toml_parser::lexer::Lexer<'t>,
    depth: usize,
    line_start: usize,
    at_line_start: bool,
    /// The start of the header line being read, if one is.
    header: Option<usize>,
    /// That header line's tokens (the buffer is reused from one header to the next).
    tokens: Vec<(T, Range<usize>)>,
    /// Scratch space for its keys.
    names: Vec<(&'t str, Range<usize>)>,
    /// The section being read: its header, start and header position.
    open: Option<(Header, usize, usize)>,
}

impl<'t> Sections<'t> {
    fn from(text: &'t str, at: usize, open: Option<(Header, usize, usize)>) -> Self {
        let rest = text.get(at..).unwrap_or("");
        Sections {
            text,
            base: at,
            lexer: Source::new(rest).lex(),
            depth: 0,
            line_start: at,
            at_line_start: true,
            header: None,
            tokens: Vec::new(),
            names: Vec::new(),
            open,
        }
    }
}

impl Iterator for Sections<'_> {
    type Item = Section;

    fn next(&mut self) -> Option<Section> {
        for token in self.lexer.by_ref() {
            let kind = token.kind();
            let span = self.base + token.span().start()..self.base + token.span().end();
            if kind == T::LeftSquareBracket
                && self.at_line_start
                && self.depth == 0
                && self.header.is_none()
            {
                self.header = Some(self.line_start);
                self.tokens.clear();
            }
            let mut done = None;
            if let Some(start) = self.header {
                if matches!(kind, T::Newline | T::Eof) {
                    let (found, found_at) = classify(self.text, &self.tokens, &mut self.names);
                    self.header = None;
                    let nested = match (&self.open, &found) {
                        (Some((owner, _, _)), Header::Other(f)) => nests(owner, f),
                        _ => false,
                    };
                    if !nested {
                        done = self.open.replace((found, start, found_at.start)).map(
                            |(header, from, header_at)| Section {
                                header,
                                range: from..start,
                                header_at,
                            },
                        );
                    }
                } else {
                    self.tokens.push((kind, span.clone()));
                }
            }
            match kind {
                T::LeftSquareBracket | T::LeftCurlyBracket => self.depth += 1,
                T::RightSquareBracket | T::RightCurlyBracket => {
                    self.depth = self.depth.saturating_sub(1)
                }
                _ => {}
            }
            match kind {
                T::Newline => {
                    self.at_line_start = true;
                    self.line_start = span.end;
                }
                T::Whitespace => {}
                _ => self.at_line_start = false,
            }
            if done.is_some() {
                return done;
            }
        }
        self.open.take().map(|(header, from, header_at)| Section {
            header,
            range: from..self.text.len(),
            header_at,
        })
    }
}

/// Whether `header` names a table inside the section `owner` (`[key.destination.per_tx_max]`
/// right after a `[[key.destination]]`, `[limits]` right after the root): such a header
/// stays in its owner's section, so the section's own parse gives it its TOML meaning.
fn nests(owner: &Header, header: &Foreign) -> bool {
    let owner: &[&str] = match owner {
        Header::Root => &[],
        Header::Global => &["global"],
        Header::Token => &["token"],
        Header::Key => &["key"],
        Header::Destination => &["key", "destination"],
        Header::Caller => &["caller"],
        Header::Approver => &["approver"],
        Header::Approval => &["approval"],
        Header::PolicyAdmins => &["policy_admins"],
        Header::DepositAccount => &["deposit_account"],
        Header::Other(_) => return false,
    };
    header.path.as_ref().is_some_and(|path| {
        path.len() > owner.len() && path.iter().zip(owner).all(|((name, _), o)| name == o)
    })
}

/// Reads a header line's tokens: `[a.b]` or `[[a.b]]`, then blanks or a comment. `names` is
/// scratch space, reused so that the usual headers cost no allocation.
fn classify<'t>(
    text: &'t str,
    tokens: &[(T, Range<usize>)],
    names: &mut Vec<(&'t str, Range<usize>)>,
) -> (Header, Range<usize>) {
    let end = tokens
        .iter()
        .position(|(k, _)| *k == T::Comment)
        .unwrap_or(tokens.len());
    let mut significant = tokens[..end].iter().filter(|(k, _)| *k != T::Whitespace);
    let first = significant.next();
    let span = match (first, significant.next_back().or(first)) {
        (Some(first), Some(last)) => first.1.start..last.1.end,
        _ => 0..0,
    };
    names.clear();
    let Some(array) = path(text, &tokens[..end], names) else {
        let foreign = Foreign {
            span: span.clone(),
            path: None,
        };
        return (Header::Other(Box::new(foreign)), span);
    };
    let is = |i: usize, name: &str| names.get(i).is_some_and(|(n, _)| *n == name);
    let header = match (array, names.len()) {
        (false, 1) if is(0, "global") => Header::Global,
        (false, 1) if is(0, "policy_admins") => Header::PolicyAdmins,
        (true, 1) if is(0, "token") => Header::Token,
        (true, 1) if is(0, "key") => Header::Key,
        (true, 1) if is(0, "caller") => Header::Caller,
        (true, 1) if is(0, "deposit_account") => Header::DepositAccount,
        (true, 1) if is(0, "approver") => Header::Approver,
        (true, 1) if is(0, "approval") => Header::Approval,
        (true, 2) if is(0, "key") && is(1, "destination") => Header::Destination,
        _ => Header::Other(Box::new(Foreign {
            span: span.clone(),
            path: Some(
                names
                    .iter()
                    .map(|(k, at)| ((*k).to_owned(), at.clone()))
                    .collect(),
            ),
        })),
    };
    (header, span)
}

/// Whether a plain header is an array of tables, with its keys pushed onto `names`; `None`
/// when it is not plain.
fn path<'t>(
    text: &'t str,
    toks: &[(T, Range<usize>)],
    names: &mut Vec<(&'t str, Range<usize>)>,
) -> Option<bool> {
    let open = |i: usize| toks.get(i).filter(|(k, _)| *k == T::LeftSquareBracket);
    let first = open(0)?;
    // `[[` must be written without a blank between the brackets.
    let array = open(1).is_some_and(|second| second.1.start == first.1.end);
    let mut i = if array { 2 } else { 1 };
    let mut want_key = true;
    loop {
        let (kind, span) = toks.get(i)?;
        i += 1;
        match kind {
            T::Whitespace => {}
            T::Atom | T::BasicString | T::LiteralString if want_key => {
                names.push((key_name(text, *kind, span)?, span.clone()));
                want_key = false;
            }
            T::Dot if !want_key => want_key = true,
            T::RightSquareBracket if !want_key => {
                if array {
                    let (k2, s2) = toks.get(i)?;
                    if *k2 != T::RightSquareBracket || s2.start != span.end {
                        return None;
                    }
                    i += 1;
                }
                break;
            }
            _ => return None,
        }
    }
    toks[i..]
        .iter()
        .all(|(k, _)| *k == T::Whitespace)
        .then_some(array)
}

/// The name a key token spells; `None` for escapes (left to the section's own parse).
fn key_name<'t>(text: &'t str, kind: T, span: &Range<usize>) -> Option<&'t str> {
    let raw = text.get(span.clone())?;
    match kind {
        T::Atom => Some(raw),
        T::LiteralString => raw.strip_prefix('\'')?.strip_suffix('\''),
        T::BasicString if !raw.contains('\\') => raw.strip_prefix('"')?.strip_suffix('"'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "a = 1\n[[key]]\nx = \"[[key.destination]]\"\n[[key.destination]]\nb = 1\n\n[[key.destination]] # two\nc = [\n[1]]\n[global]\n[[ key . 'destination' ]]\nd = 2";

    fn s_start(text: &str, header: &str) -> usize {
        text.find(header).unwrap()
    }

    fn headers(text: &str) -> Vec<Header> {
        sections(text).map(|s| s.header).collect()
    }

    #[test]
    fn finds_headers_outside_strings_and_arrays() {
        let s: Vec<Section> = sections(TEXT).collect();
        let got: Vec<(Header, &str)> = s
            .iter()
            .map(|s| (s.header.clone(), &TEXT[s.range.clone()]))
            .collect();
        assert_eq!(
            got,
            vec![
                (Header::Root, "a = 1\n"),
                (Header::Key, "[[key]]\nx = \"[[key.destination]]\"\n"),
                (Header::Destination, "[[key.destination]]\nb = 1\n\n"),
                (
                    Header::Destination,
                    "[[key.destination]] # two\nc = [\n[1]]\n"
                ),
                (Header::Global, "[global]\n"),
                (Header::Destination, "[[ key . 'destination' ]]\nd = 2"),
            ]
        );
        let second = TEXT.find("[[key.destination]] #").unwrap();
        assert_eq!(s[3].header_at, second);
        // An indented header starts at its bracket; its section at the line.
        let indented: Vec<Section> = sections("[[key]]\n  [[key.destination]]\n").collect();
        assert_eq!((indented[2].start(), indented[2].header_at), (8, 10));
        assert_eq!(s[3].start(), second);
    }

    #[test]
    fn other_headers_keep_their_path() {
        let t = "[[token]]\n[key.destination.per_tx_max]\n[[key.windows]]\n[ [key.destination] ]\n[\"glob\\u0061l\"]\n[[key.destination]] x = 1\n[key]\n";
        let h = headers(t);
        let names = |h: &Header| match h {
            Header::Other(f) => f.path.iter().flatten().map(|(k, _)| k.clone()).collect(),
            _ => Vec::new(),
        };
        assert_eq!(names(&h[2]), ["key", "destination", "per_tx_max"]);
        assert_eq!(names(&h[3]), ["key", "windows"]);
        // Not plain: left to the section's parse.
        for h in &h[4..7] {
            assert!(matches!(h, Header::Other(f) if f.path.is_none()), "{h:?}");
        }
        // A table header named like an array of tables.
        assert_eq!(names(&h[7]), ["key"]);
        assert_eq!(headers("no headers"), vec![Header::Root]);
    }

    #[test]
    fn nested_headers_stay_in_their_section() {
        let t = "[limits]\n[[key]]\n[[key.windows]]\n[[key.destination]]\n[key.destination.per_tx_max]\n[[key.destination.windows]]\n[[token]]\n[key.x]\n";
        let got: Vec<(Header, &str)> = sections(t)
            .map(|s| (s.header.clone(), &t[s.range.clone()]))
            .collect();
        let other = &got[4];
        assert_eq!(
            got[..4],
            [
                (Header::Root, "[limits]\n"),
                (Header::Key, "[[key]]\n[[key.windows]]\n"),
                (
                    Header::Destination,
                    "[[key.destination]]\n[key.destination.per_tx_max]\n[[key.destination.windows]]\n"
                ),
                (Header::Token, "[[token]]\n"),
            ]
        );
        // Not right after its key: a section of its own.
        assert!(matches!(&other.0, Header::Other(_)) && other.1 == "[key.x]\n");
        // Resuming at a section start finds the same sections from there on.
        let from = s_start(TEXT, "[global]");
        let rest: Vec<Section> = sections_after(TEXT, from).collect();
        let all: Vec<Section> = sections(TEXT).collect();
        assert_eq!(rest, all[4..].to_vec());
    }
}
