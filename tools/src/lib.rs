//! What the tools' binaries share: building the transactions they ask the signer to sign (and
//! the bench approvers' approvals of them), and the crash harness's setup and checks (kept
//! out of its binary so they are unit-tested).

pub mod approvals;
pub mod crash;
pub mod tx;
