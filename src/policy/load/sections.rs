//! Cuts a policy file into its top-level sections, so each is parsed alone and dropped.
//!
//! The `toml` parse tree of a whole 100,000-destination policy is about 30 times the file
//! size. A section (a header line plus the lines up to the next header) is a table of its
//! own, so the loader parses one at a time at its place in the walk. Headers are found with
//! the TOML lexer, which is context-free: text inside a string or a multi-line array is never
//! taken for a header. Spans of a section parsed alone start at [`Section::start`].

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
    /// Any other header: `path` is its keys with their spans, `None` when it is not a plain
    /// header (the section's parse then reports the syntax error).
    Other(Option<Vec<(String, Range<usize>)>>),
}

/// One section: `range` covers its header line and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Section {
    pub(super) header: Header,
    pub(super) range: Range<usize>,
    /// The header's span (its brackets included); empty for the root section.
    pub(super) header_span: Range<usize>,
}

impl Section {
    /// File offset that spans from this section's own parse are relative to.
    pub(super) fn start(&self) -> usize {
        self.range.start
    }
}

/// Every section of `text` in file order, the root section first (possibly empty).
pub(super) fn sections(text: &str) -> Vec<Section> {
    let mut out = vec![Section {
        header: Header::Root,
        range: 0..text.len(),
        header_span: 0..0,
    }];
    let mut depth: usize = 0;
    let mut line_start = 0;
    let mut at_line_start = true;
    // The current header line's tokens (and the line's start), while one is being read.
    let mut header: Option<(usize, Vec<(T, Range<usize>)>)> = None;
    for token in Source::new(text).lex() {
        let kind = token.kind();
        let span = token.span().start()..token.span().end();
        if kind == T::LeftSquareBracket && at_line_start && depth == 0 && header.is_none() {
            header = Some((line_start, Vec::new()));
        }
        if let Some((start, tokens)) = header.as_mut() {
            if matches!(kind, T::Newline | T::Eof) {
                let start = *start;
                if let Some(prev) = out.last_mut() {
                    prev.range.end = start;
                }
                let (kind, header_span) = classify(text, tokens);
                out.push(Section {
                    header: kind,
                    range: start..text.len(),
                    header_span,
                });
                header = None;
            } else {
                tokens.push((kind, span.clone()));
            }
        }
        match kind {
            T::LeftSquareBracket | T::LeftCurlyBracket => depth += 1,
            T::RightSquareBracket | T::RightCurlyBracket => depth = depth.saturating_sub(1),
            _ => {}
        }
        match kind {
            T::Newline => {
                at_line_start = true;
                line_start = span.end;
            }
            T::Whitespace => {}
            _ => at_line_start = false,
        }
    }
    out
}

/// Reads a header line's tokens: `[a.b]` or `[[a.b]]`, then blanks or a comment.
fn classify(text: &str, tokens: &[(T, Range<usize>)]) -> (Header, Range<usize>) {
    let end = tokens
        .iter()
        .position(|(k, _)| *k == T::Comment)
        .unwrap_or(tokens.len());
    let significant: Vec<&(T, Range<usize>)> = tokens[..end]
        .iter()
        .filter(|(k, _)| *k != T::Whitespace)
        .collect();
    let span = match (significant.first(), significant.last()) {
        (Some(first), Some(last)) => first.1.start..last.1.end,
        _ => 0..0,
    };
    let header = path(text, tokens, end)
        .map(|(array, keys)| {
            let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
            match (array, names.as_slice()) {
                (false, ["global"]) => Header::Global,
                (true, ["token"]) => Header::Token,
                (true, ["key"]) => Header::Key,
                (true, ["key", "destination"]) => Header::Destination,
                _ => Header::Other(Some(keys)),
            }
        })
        .unwrap_or(Header::Other(None));
    (header, span)
}

/// Whether the header is an array of tables, and its keys; `None` when it is not plain.
#[allow(clippy::type_complexity)]
fn path(
    text: &str,
    tokens: &[(T, Range<usize>)],
    end: usize,
) -> Option<(bool, Vec<(String, Range<usize>)>)> {
    let toks = &tokens[..end];
    let open = |i: usize| toks.get(i).filter(|(k, _)| *k == T::LeftSquareBracket);
    let first = open(0)?;
    // `[[` must be written without a blank between the brackets.
    let array = open(1).is_some_and(|second| second.1.start == first.1.end);
    let mut i = if array { 2 } else { 1 };
    let mut keys = Vec::new();
    let mut want_key = true;
    loop {
        let (kind, span) = toks.get(i)?;
        i += 1;
        match kind {
            T::Whitespace => {}
            T::Atom | T::BasicString | T::LiteralString if want_key => {
                keys.push((key_name(text, *kind, span)?, span.clone()));
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
        .then_some((array, keys))
}

/// The name a key token spells; `None` for escapes (left to the section's own parse).
fn key_name(text: &str, kind: T, span: &Range<usize>) -> Option<String> {
    let raw = text.get(span.clone())?;
    match kind {
        T::Atom => Some(raw.to_owned()),
        T::LiteralString => Some(raw.strip_prefix('\'')?.strip_suffix('\'')?.to_owned()),
        T::BasicString if !raw.contains('\\') => {
            Some(raw.strip_prefix('"')?.strip_suffix('"')?.to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "a = 1\n[[key]]\nx = \"[[key.destination]]\"\n[[key.destination]]\nb = 1\n\n[[key.destination]] # two\nc = [\n[1]]\n[global]\n[[ key . 'destination' ]]\nd = 2";

    fn headers(text: &str) -> Vec<Header> {
        sections(text).into_iter().map(|s| s.header).collect()
    }

    #[test]
    fn finds_headers_outside_strings_and_arrays() {
        let s = sections(TEXT);
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
        assert_eq!(
            s[3].header_span,
            second..second + "[[key.destination]]".len()
        );
        assert_eq!(s[3].start(), second);
    }

    #[test]
    fn other_headers_keep_their_path() {
        let t = "[key.destination.per_tx_max]\n[[key.windows]]\n[ [key.destination] ]\n[\"glob\\u0061l\"]\n[[key.destination]] x = 1\n[key]\n";
        let h = headers(t);
        let names = |h: &Header| match h {
            Header::Other(Some(keys)) => keys.iter().map(|(k, _)| k.clone()).collect(),
            _ => Vec::new(),
        };
        assert_eq!(names(&h[1]), ["key", "destination", "per_tx_max"]);
        assert_eq!(names(&h[2]), ["key", "windows"]);
        // Not plain: left to the section's parse.
        assert_eq!(h[3], Header::Other(None));
        assert_eq!(h[4], Header::Other(None));
        assert_eq!(h[5], Header::Other(None));
        // A table header named like an array of tables.
        assert_eq!(names(&h[6]), ["key"]);
        assert_eq!(headers("no headers"), vec![Header::Root]);
    }
}
