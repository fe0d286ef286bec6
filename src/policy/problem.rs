//! Load problems: what is wrong with a policy file, and where.
//!
//! The loader collects every problem before giving up, so an operator fixes a file in one
//! pass and `policy check` can list them all.

use std::fmt;
use std::ops::Range;

/// The kind of a load problem; stable codes for tests and tooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemCode {
    /// The file could not be read.
    Unreadable,
    /// The file is not UTF-8.
    NotUtf8,
    /// TOML syntax error (includes keys written twice in one table).
    Syntax,
    UnknownField,
    MissingField,
    WrongType,
    UnsupportedVersion,
    BadAddress,
    BadAmount,
    BadDuration,
    /// A value outside the range the signer accepts (decimals, memo length, caps).
    OutOfRange,
    DuplicateKey,
    DuplicateDestination,
    DuplicateAsset,
    DuplicateWindow,
    /// A symbol that is neither TRX nor a declared `[[token]]`, or not listed where required.
    UndeclaredAsset,
    /// Limits that contradict each other (per-tx above a window, shorter window larger, ...).
    InconsistentLimit,
    ZeroAmount,
    NoKeys,
}

impl ProblemCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::Unreadable => "unreadable",
            ProblemCode::NotUtf8 => "not_utf8",
            ProblemCode::Syntax => "syntax",
            ProblemCode::UnknownField => "unknown_field",
            ProblemCode::MissingField => "missing_field",
            ProblemCode::WrongType => "wrong_type",
            ProblemCode::UnsupportedVersion => "unsupported_version",
            ProblemCode::BadAddress => "bad_address",
            ProblemCode::BadAmount => "bad_amount",
            ProblemCode::BadDuration => "bad_duration",
            ProblemCode::OutOfRange => "out_of_range",
            ProblemCode::DuplicateKey => "duplicate_key",
            ProblemCode::DuplicateDestination => "duplicate_destination",
            ProblemCode::DuplicateAsset => "duplicate_asset",
            ProblemCode::DuplicateWindow => "duplicate_window",
            ProblemCode::UndeclaredAsset => "undeclared_asset",
            ProblemCode::InconsistentLimit => "inconsistent_limit",
            ProblemCode::ZeroAmount => "zero_amount",
            ProblemCode::NoKeys => "no_keys",
        }
    }
}

/// One thing wrong with a policy file. `line` and `column` are 1-based; 0 means the problem
/// concerns the whole file (unreadable, not UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub code: ProblemCode,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// A policy that was refused, with every problem found (sorted by position).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyLoadError {
    pub problems: Vec<Problem>,
}

impl PolicyLoadError {
    /// Stable machine-readable code for the whole failure.
    pub fn code(&self) -> &'static str {
        match self.problems.first().map(|p| p.code) {
            Some(ProblemCode::Unreadable) => "policy_unreadable",
            _ => "policy_invalid",
        }
    }

    pub(crate) fn whole_file(file: &str, code: ProblemCode, message: String) -> Self {
        PolicyLoadError {
            problems: vec![Problem {
                file: file.to_owned(),
                line: 0,
                column: 0,
                code,
                message,
            }],
        }
    }
}

impl fmt::Display for PolicyLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Collects problems against one text, turning byte spans into line and column.
///
/// Spans may come from a part of the text parsed on its own (see `split`): `map` turns
/// skeleton offsets into file offsets, and `base`, while set, is the file offset of the
/// section being checked. Spans kept for later (first occurrences) are stored as file
/// offsets via [`Problems::absolute`].
pub(crate) struct Problems<'t> {
    file: &'t str,
    text: &'t str,
    list: Vec<Problem>,
    map: Vec<(usize, usize)>,
    base: Option<usize>,
}

impl<'t> Problems<'t> {
    pub(crate) fn new(file: &'t str, text: &'t str) -> Self {
        Problems {
            file,
            text,
            list: Vec::new(),
            map: Vec::new(),
            base: None,
        }
    }

    /// Spans from now on are offsets into the skeleton described by `map`.
    pub(crate) fn set_map(&mut self, map: Vec<(usize, usize)>) {
        self.map = map;
    }

    /// Spans from now on are offsets into a section starting at file offset `base`
    /// (`None`: back to the skeleton).
    pub(crate) fn set_base(&mut self, base: Option<usize>) {
        self.base = base;
    }

    /// The file offsets of `span`.
    pub(crate) fn absolute(&self, span: &Range<usize>) -> Range<usize> {
        let start = self.to_file(span.start);
        start..start + span.len()
    }

    fn to_file(&self, at: usize) -> usize {
        match self.base {
            Some(base) => base + at,
            None => super::split::to_file(&self.map, at),
        }
    }

    pub(crate) fn at(&mut self, span: Range<usize>, code: ProblemCode, message: impl Into<String>) {
        let (line, column) = line_col(self.text, self.to_file(span.start));
        self.list.push(Problem {
            file: self.file.to_owned(),
            line,
            column,
            code,
            message: message.into(),
        });
    }

    /// Line and column of a file offset (not translated: see [`Problems::absolute`]).
    pub(crate) fn line_col(&self, at: usize) -> (usize, usize) {
        line_col(self.text, at)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn into_error(mut self) -> PolicyLoadError {
        // Stable sort: problems at one position keep the order they were found in.
        self.list.sort_by_key(|p| (p.line, p.column));
        PolicyLoadError {
            problems: self.list,
        }
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let t = "ab\ncdé\nf";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 1), (1, 2));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 8), (3, 1));
        // Past the end and inside a multi-byte character do not panic.
        assert_eq!(line_col(t, 100), (3, 2));
        assert_eq!(line_col(t, 6), (2, 3));
    }
}
