//! Approvals of a payout by named people (M-of-N sign-off), bound to the exact transaction:
//! what an approver signs ([`statement`]) and whether the approvals a request carries meet
//! the quorum the policy asks ([`check`]). The policy says who must approve what
//! (`crate::policy::approval`).

pub mod check;
pub mod evidence;
pub mod statement;

pub use check::{check, ApprovalError, Approvals, Counted, Offered, Subject};
pub use statement::{statement, Verdict, NAMESPACE};
