//! tron-broadcaster: the untrusted half of the payout system.
//!
//! It accepts payout requests from payment backends, builds unsigned Tron transactions
//! locally, gets them signed by `tron-signer` (online over gRPC, or offline through batch
//! files), broadcasts them to a full node and tracks them to solidified confirmation.
//!
//! It holds no key that can move funds and links no key backend: everything it sends to the
//! signer is checked there again, so a compromised broadcaster can move funds only where and
//! as fast as the signer's policy allows. The one key it may hold, the exporter key
//! (`exporter_key`), only says that a batch file comes from this broadcaster. It never opens
//! a connection other than to the configured node, the signer, and the configured webhook
//! endpoints.
#![forbid(unsafe_code)]

pub mod amount;
pub mod api;
pub mod apikeys;
pub mod approval_api;
pub mod batch;
pub mod bounded_listener;
pub mod builder;
pub mod chain;
pub mod cli;
pub mod config;
pub mod credit;
pub mod delivery_store;
pub mod deposit_address;
pub mod duration;
pub mod exporter_key;
pub mod invoice;
pub mod invoice_api;
pub mod metrics;
pub mod metrics_listener;
pub mod model;
pub mod node;
pub mod outbox;
pub mod pipeline;
pub mod receive_store;
pub mod resources;
pub mod secret;
pub mod signer;
pub mod signer_tls;
pub mod store;
pub mod sweep;
pub mod sweeper;
pub mod watcher;
pub mod webhook_sign;
pub mod webhooks;
