//! Keeps a large allowlist from being held as one TOML tree.
//!
//! The `toml` parse tree of a 100,000-destination policy (plus the token and event buffers
//! it is built from) is about 30 times the file size. Every `[[key.destination]]` section,
//! though, is a table of its own: nothing outside it can write into it, so it can be parsed
//! and checked alone and dropped. [`split`] finds runs of such sections with the TOML lexer
//! (which is context-free, so it cannot mistake text inside a string for a header) and
//! builds a *skeleton*: the file with each run cut down to its first header line. The
//! skeleton is parsed as usual and keeps every header, so table structure and its errors are
//! unchanged; each cut section is parsed later on its own, at its place in the walk.
//!
//! Whenever the shape is not the plain one (a header that could reach into a destination,
//! a syntax error anywhere), the caller parses the whole file the ordinary way instead, so
//! every problem is reported exactly as before.

use std::ops::Range;

use toml_parser::lexer::TokenKind as T;
use toml_parser::Source;

/// The only header a run is made of, spelled exactly so.
const RUN_HEADER: &str = "[[key.destination]]";

/// The file with destination runs cut out, and where the cut text was.
pub(crate) struct Split {
    pub(crate) skeleton: String,
    /// `(skeleton offset, bytes cut before it)`, ascending: turns skeleton offsets back into
    /// file offsets.
    pub(crate) map: Vec<(usize, usize)>,
    /// Per run, in file order: the skeleton range of its kept header line, and the file
    /// ranges of its sections (each a header line plus its body).
    runs: Vec<(Range<usize>, Vec<Range<usize>>)>,
}

impl Split {
    /// The sections a placeholder destination stands for, given the placeholder's skeleton
    /// span start.
    pub(crate) fn sections(&self, skeleton_at: usize) -> Option<&[Range<usize>]> {
        let i = self
            .runs
            .partition_point(|(header, _)| header.end <= skeleton_at);
        let (header, sections) = self.runs.get(i)?;
        header.contains(&skeleton_at).then_some(sections.as_slice())
    }
}

/// One top-level section: from the start of its header's line to the next header's line.
struct Section {
    start: usize,
    /// Where the header line ends (after its newline); the body starts here.
    body: usize,
    is_run: bool,
}

/// Splits `text`, or `None` when there is nothing worth cutting or the file does not have the
/// plain shape this relies on.
pub(crate) fn split(text: &str) -> Option<Split> {
    let sections = sections(text)?;
    let mut runs: Vec<(Range<usize>, Vec<Range<usize>>)> = Vec::new();
    let mut cuts: Vec<Range<usize>> = Vec::new();
    let mut i = 0;
    while i < sections.len() {
        if !sections[i].is_run {
            i += 1;
            continue;
        }
        let first = i;
        while i < sections.len() && sections[i].is_run {
            i += 1;
        }
        let end_of = |j: usize| sections.get(j + 1).map_or(text.len(), |s| s.start);
        let ranges: Vec<Range<usize>> = (first..i).map(|j| sections[j].start..end_of(j)).collect();
        let cut = sections[first].body..end_of(i - 1);
        runs.push((sections[first].start..sections[first].body, ranges));
        cuts.push(cut);
    }
    if runs.is_empty() {
        return None;
    }
    let kept: usize = text.len() - cuts.iter().map(|c| c.len()).sum::<usize>();
    let mut skeleton = String::with_capacity(kept);
    let mut map = vec![(0, 0)];
    let mut from = 0;
    let mut cut_so_far = 0;
    for (cut, (header, _)) in cuts.iter().zip(runs.iter_mut()) {
        *header = header.start - cut_so_far..header.end - cut_so_far;
        skeleton.push_str(text.get(from..cut.start)?);
        cut_so_far += cut.len();
        map.push((skeleton.len(), cut_so_far));
        from = cut.end;
    }
    skeleton.push_str(text.get(from..)?);
    Some(Split {
        skeleton,
        map,
        runs,
    })
}

/// Maps a skeleton offset to a file offset.
pub(crate) fn to_file(map: &[(usize, usize)], at: usize) -> usize {
    let i = map.partition_point(|(start, _)| *start <= at);
    at + i.checked_sub(1).map_or(0, |i| map[i].1)
}

/// Every top-level section of `text`, or `None` if a header that is not exactly
/// [`RUN_HEADER`] could name a destination (it would write into the last one).
fn sections(text: &str) -> Option<Vec<Section>> {
    let mut out: Vec<Section> = Vec::new();
    let mut depth: usize = 0;
    let mut line_start = 0;
    let mut at_line_start = true;
    // The current header line's tokens, while one is being read.
    let mut header: Option<Vec<(T, Range<usize>)>> = None;
    for token in Source::new(text).lex() {
        let kind = token.kind();
        let span = token.span().start()..token.span().end();
        if kind == T::LeftSquareBracket && at_line_start && depth == 0 && header.is_none() {
            header = Some(Vec::new());
        }
        if let Some(h) = header.as_mut() {
            if matches!(kind, T::Newline | T::Eof) {
                let is_run = is_run_header(text, h)?;
                out.push(Section {
                    start: line_start,
                    body: span.end,
                    is_run,
                });
                header = None;
            } else {
                h.push((kind, span.clone()));
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
    Some(out)
}

/// Whether a header line is exactly [`RUN_HEADER`] (plus blanks or a comment); `None` when it
/// is another header that could reach into a destination table.
fn is_run_header(text: &str, tokens: &[(T, Range<usize>)]) -> Option<bool> {
    let end = tokens
        .iter()
        .position(|(k, _)| *k == T::Comment)
        .unwrap_or(tokens.len());
    let mut significant = tokens[..end].iter().filter(|(k, _)| *k != T::Whitespace);
    let first = significant.next()?.1.start;
    let last = significant.next_back().map_or(first + 1, |(_, s)| s.end);
    let header = text.get(first..last)?;
    if header == RUN_HEADER {
        return Some(true);
    }
    // Quoted or dotted spellings of "destination" could name the same table.
    if header.contains("destination") || header.contains('"') || header.contains('\'') {
        return None;
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "a = 1\n[[key]]\nx = \"[[key.destination]]\"\n[[key.destination]]\nb = 1\n\n[[key.destination]] # two\nc = [\n[1]]\n[global]\n[[key.destination]]\nd = 2";

    #[test]
    fn cuts_runs_and_keeps_first_headers() {
        let s = split(TEXT).unwrap();
        assert_eq!(
            s.skeleton,
            "a = 1\n[[key]]\nx = \"[[key.destination]]\"\n[[key.destination]]\n[global]\n[[key.destination]]\n"
        );
        let first = TEXT.find("[[key.destination]]\nb").unwrap();
        let second = TEXT.find("[[key.destination]] #").unwrap();
        let global = TEXT.find("[global]").unwrap();
        let third = TEXT.rfind("[[key.destination]]").unwrap();
        let at = s.skeleton.find("[[key.destination]]\n[g").unwrap();
        assert_eq!(
            s.sections(at + 2).unwrap(),
            &[first..second, second..global][..]
        );
        let at3 = s.skeleton.rfind("[[key").unwrap();
        let only = s.sections(at3).unwrap();
        assert_eq!((only.len(), only[0].clone()), (1, third..TEXT.len()));
        assert!(s.sections(0).is_none());
        // Skeleton offsets map back to the same text in the file.
        let g = s.skeleton.find("[global]").unwrap();
        assert_eq!(to_file(&s.map, g), global);
        assert_eq!(to_file(&s.map, at3), third);
        assert_eq!(to_file(&s.map, 3), 3);
    }

    #[test]
    fn refuses_headers_that_could_reach_a_destination() {
        for h in [
            "[key.destination.per_tx_max]",
            "[[key.destination.windows]]",
            "[key.\"destination\"]",
            "[ [key . destination] ]",
        ] {
            let t = format!("[[key]]\n[[key.destination]]\na = 1\n{h}\n");
            assert!(split(&t).is_none(), "{h}");
        }
        assert!(split("[[key]]\na = 1\n").is_none());
    }
}
