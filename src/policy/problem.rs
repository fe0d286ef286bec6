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
    /// An instant that is not `YYYY-MM-DDThh:mm:ssZ` (UTC), or a validity that ends before
    /// it begins.
    BadTime,
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
    /// `network` is not one of the networks the signer knows.
    BadNetwork,
    /// A well-known token contract (built-in table) declared with other decimals than it has.
    KnownTokenDecimals,
    /// A well-known token contract that belongs to another network than the policy's.
    TokenNetwork,
    /// A clock skew not shorter than a window it applies to (the window would never close).
    ClockSkewTooLong,
    /// Two `[[caller]]`s with one name, or one identity recognising two callers.
    DuplicateCaller,
    /// A `[[caller]]` identity that is not well formed (pin, SAN, SSH key).
    BadIdentity,
    /// An RPC name the signer does not serve.
    UnknownRpc,
    /// A caller granted a key the policy has no `[[key]]` for.
    UnknownKey,
    /// No `[[caller]]`: nobody could ask anything.
    NoCallers,
    /// Two `[[approver]]`s with one name or one key.
    DuplicateApprover,
    /// `[policy_admins]` that is no usable administrator set (a name, a repeated name or key,
    /// a threshold of 0 or above the number of administrators).
    BadAdminSet,
    /// A name that has no `[[caller]]` section.
    UnknownCaller,
    /// An `[[approval]]` rule asking more approvers of a group than it has.
    ApprovalUnreachable,
    /// A `[[deposit_account]]` xpub that is not a mainnet account-level extended public key.
    BadXpub,
    /// Two `[[deposit_account]]`s with one name or one xpub.
    DuplicateDepositAccount,
    /// A `gas_for` or `deposit_accounts` entry naming no `[[deposit_account]]`.
    UnknownDepositAccount,
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
            ProblemCode::BadTime => "bad_time",
            ProblemCode::OutOfRange => "out_of_range",
            ProblemCode::DuplicateKey => "duplicate_key",
            ProblemCode::DuplicateDestination => "duplicate_destination",
            ProblemCode::DuplicateAsset => "duplicate_asset",
            ProblemCode::DuplicateWindow => "duplicate_window",
            ProblemCode::UndeclaredAsset => "undeclared_asset",
            ProblemCode::InconsistentLimit => "inconsistent_limit",
            ProblemCode::ZeroAmount => "zero_amount",
            ProblemCode::NoKeys => "no_keys",
            ProblemCode::BadNetwork => "bad_network",
            ProblemCode::KnownTokenDecimals => "known_token_decimals",
            ProblemCode::TokenNetwork => "token_network",
            ProblemCode::ClockSkewTooLong => "clock_skew_too_long",
            ProblemCode::DuplicateCaller => "duplicate_caller",
            ProblemCode::BadIdentity => "bad_identity",
            ProblemCode::UnknownRpc => "unknown_rpc",
            ProblemCode::UnknownKey => "unknown_key",
            ProblemCode::NoCallers => "no_callers",
            ProblemCode::DuplicateApprover => "duplicate_approver",
            ProblemCode::BadAdminSet => "bad_admin_set",
            ProblemCode::UnknownCaller => "unknown_caller",
            ProblemCode::ApprovalUnreachable => "approval_unreachable",
            ProblemCode::BadXpub => "bad_xpub",
            ProblemCode::DuplicateDepositAccount => "duplicate_deposit_account",
            ProblemCode::UnknownDepositAccount => "unknown_deposit_account",
        }
    }
}

/// One thing wrong with a policy file. `line` and `column` are 1-based; 0 means the problem
/// concerns the whole file (unreadable, not UTF-8). Shown as `file:line:column: message [code]`.
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
        // The code last, so the location and the message read first.
        if self.line == 0 {
            write!(
                f,
                "{}: {} [{}]",
                self.file,
                self.message,
                self.code.as_str()
            )
        } else {
            write!(
                f,
                "{}:{}:{}: {} [{}]",
                self.file,
                self.line,
                self.column,
                self.message,
                self.code.as_str()
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

/// Collects problems against one text, turning file offsets into line and column.
///
/// TOML syntax errors are kept apart: after one, a section's parse tree is partial, and
/// checking it would report fields as missing that are present, so when there is any syntax
/// error only the syntax errors are listed.
pub(crate) struct Problems<'t> {
    file: &'t str,
    text: &'t str,
    list: Vec<Problem>,
    syntax: Vec<Problem>,
}

impl<'t> Problems<'t> {
    pub(crate) fn new(file: &'t str, text: &'t str) -> Self {
        Problems {
            file,
            text,
            list: Vec::new(),
            syntax: Vec::new(),
        }
    }

    fn problem(&self, at: usize, code: ProblemCode, message: String) -> Problem {
        let (line, column) = line_col(self.text, at);
        Problem {
            file: self.file.to_owned(),
            line,
            column,
            code,
            message,
        }
    }

    /// A problem at the file offsets `span`.
    pub(crate) fn at(&mut self, span: Range<usize>, code: ProblemCode, message: impl Into<String>) {
        let problem = self.problem(span.start, code, message.into());
        self.list.push(problem);
    }

    /// A TOML syntax error at file offset `at`.
    pub(crate) fn syntax(&mut self, at: usize, message: String) {
        let problem = self.problem(at, ProblemCode::Syntax, message);
        self.syntax.push(problem);
    }

    /// Line and column of a file offset.
    pub(crate) fn line_col(&self, at: usize) -> (usize, usize) {
        line_col(self.text, at)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty() && self.syntax.is_empty()
    }

    /// How many problems have been found so far.
    pub(crate) fn len(&self) -> usize {
        self.list.len() + self.syntax.len()
    }

    pub(crate) fn into_error(self) -> PolicyLoadError {
        let mut list = if self.syntax.is_empty() {
            self.list
        } else {
            self.syntax
        };
        // Stable sort: problems at one position keep the order they were found in.
        list.sort_by_key(|p| (p.line, p.column));
        PolicyLoadError { problems: list }
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
