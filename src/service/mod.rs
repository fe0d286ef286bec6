//! The signing service: the shared decision path ([`core`]) and its gRPC front end
//! ([`grpc`]), plus the server that runs them ([`server`]) and the limits on its
//! connections ([`connections`]).
//!
//! `core` reads top to bottom as the decision path; what it leans on has a module each:
//! request validation (`request`), refusals (`refusal`), the policy in force
//! (`policy_slot`), the audit record of each request (`audit_draft`) and the clock check
//! (`clock_guard`), who is asking and what they may do (`peer`, `authorize`). What gRPC
//! health reports lives in `health`.

mod audit_budget;
mod audit_draft;
mod authorize;
mod bounded;
mod clock_guard;
pub mod connections;
pub mod core;
mod freezes;
pub mod grpc;
mod health;
pub mod metrics_listener;
pub mod peer;
pub mod policy_gate;
mod policy_slot;
mod refusal;
mod request;
pub mod run;
pub mod server;
pub mod tls;
pub mod unix_socket;

pub use self::audit_budget::{
    DEFAULT_BURST_BYTES, DEFAULT_BYTES_PER_SECOND, DEFAULT_UNSIGNED_BURST,
    DEFAULT_UNSIGNED_PER_SECOND,
};
pub use self::core::{Core, Evaluated, Signed};
pub use self::peer::Peer;
pub use self::refusal::{Refusal, RefusalKind};
pub use self::request::{payout_id_ok, MAX_PAYOUT_ID_LEN};
