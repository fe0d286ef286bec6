//! The signing service: the shared decision path ([`core`]) and its gRPC front end
//! ([`grpc`]), plus the server that runs them ([`server`]).

pub mod core;
pub mod grpc;
pub mod run;
pub mod server;

pub use self::core::{Core, Evaluated, Refusal, RefusalKind, Signed};
