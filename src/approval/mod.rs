//! Approvals of a payout by named people (M-of-N sign-off), bound to the exact transaction:
//! what an approver signs ([`statement`]). The policy says who must approve what
//! (`crate::policy::approval`); the decision path refuses a transfer that needs approvals
//! with `approval_required` and the statement to sign.

pub mod statement;

pub use statement::{statement, Verdict, NAMESPACE};
