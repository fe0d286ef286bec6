//! A payout and its history, as stored and as the API shows it.

use serde::{Deserialize, Serialize};

/// Where a payout stands. `denied`, `confirmed` and `failed` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Accepted, no transaction built yet.
    Queued,
    /// A transaction is built and waits for a signature (online or from an air-gap batch).
    Signing,
    /// The signer refused; final.
    Denied,
    /// Submitted to the node; waiting for the solidified receipt.
    Broadcast,
    /// Solidified with a successful receipt; final.
    Confirmed,
    /// Rejected by the node or reverted on chain; final.
    Failed,
    /// The last transaction expired unconfirmed; a new one will be built.
    Retrying,
    /// The signer asked for approvals of the current transaction; approvers' signatures
    /// are collected through the API and passed on until the signer signs or refuses.
    #[serde(rename = "awaiting_approval")]
    AwaitingApproval,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Queued,
        Status::Signing,
        Status::AwaitingApproval,
        Status::Denied,
        Status::Broadcast,
        Status::Confirmed,
        Status::Failed,
        Status::Retrying,
    ];

    pub fn is_final(self) -> bool {
        matches!(self, Status::Denied | Status::Confirmed | Status::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Signing => "signing",
            Status::Denied => "denied",
            Status::Broadcast => "broadcast",
            Status::Confirmed => "confirmed",
            Status::Failed => "failed",
            Status::Retrying => "retrying",
            Status::AwaitingApproval => "awaiting_approval",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// The assets a payout can be made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Asset {
    #[serde(rename = "TRX")]
    Trx,
    #[serde(rename = "USDT")]
    Usdt,
}

impl Asset {
    pub fn parse(s: &str) -> Option<Asset> {
        match s {
            "TRX" => Some(Asset::Trx),
            "USDT" => Some(Asset::Usdt),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Asset::Trx => "TRX",
            Asset::Usdt => "USDT",
        }
    }
}

/// How the transaction of an attempt gets its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Asked from the signer over gRPC.
    Online,
    /// Written to an air-gap batch file; the signature comes back with `batch import`.
    Batch,
}

/// One transaction built for a payout. A payout has several only when earlier ones
/// expired unconfirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// sha256(raw_data), hex.
    pub txid: String,
    /// The unsigned `Transaction.raw` bytes, hex: exactly what was (or will be) signed.
    pub raw_data: String,
    /// The transaction's expiration (ms since epoch, node time).
    pub expiration_ms: i64,
    /// The head block the TAPOS reference was taken from.
    pub ref_block: u64,
    pub created_at_ms: i64,
    pub origin: Origin,
    /// The signed transaction, hex, persisted before it is ever broadcast.
    pub signed_transaction: Option<String>,
    /// When the node first accepted (or already knew) the transaction.
    pub broadcast_at_ms: Option<i64>,
    /// Set once the signer asked for approvals of this transaction.
    #[serde(default)]
    pub approval: Option<ApprovalState>,
}

/// The approvals of one transaction: what the signer asked approvers to sign, and what
/// they sent. Approvals name a txid, so a rebuilt transaction starts with none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalState {
    /// The statement the signer returned with `approval_required` (empty if it sent
    /// none; `tron-signer approve` builds the same text from the raw bytes and policy).
    pub statement: String,
    /// The signer's last word on which groups and counts are still needed.
    pub needed: String,
    pub approvals: Vec<CollectedApproval>,
}

impl ApprovalState {
    /// The approvals the signer has taken so far, and the first one it has not seen yet.
    /// The signer is shown one new approval at a time, so a void one is always known.
    pub fn next_offer(&self) -> (Vec<&CollectedApproval>, Option<usize>) {
        let taken = self
            .approvals
            .iter()
            .filter(|a| a.state == ApprovalProgress::Accepted)
            .collect();
        let next = self
            .approvals
            .iter()
            .position(|a| a.state == ApprovalProgress::Pending);
        (taken, next)
    }
}

/// One approval (or rejection) as an approver sent it through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectedApproval {
    /// The armored SSH signature.
    pub signature: String,
    /// The statement that was signed, when the sender gave it.
    pub statement: String,
    pub received_at_ms: i64,
    /// The id of the API key that sent it.
    pub received_from: String,
    pub state: ApprovalProgress,
    /// The signer's reason when it voided this approval.
    pub refusal: Option<Reason>,
}

/// Where one collected approval stands with the signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalProgress {
    /// Not yet shown to the signer.
    Pending,
    /// The signer verified it and counted it (it asked for more, or signed).
    Accepted,
    /// The signer voided it (see `refusal`); it is not passed on again.
    Refused,
}

/// A reason code and message from the signer or the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
}

/// One recorded status change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub status: Status,
    pub at_ms: i64,
    pub note: String,
}

/// Separates the tenant from the payout id in a payout's [`Payout::key`]. Neither a tenant
/// name nor a payout id may contain it, so the key splits back unambiguously.
pub const KEY_SEPARATOR: char = '/';

/// What a payout is for. Merchant payouts come from the payouts API; the sweeper
/// ([`crate::sweep`]) makes the other two, which the payouts API does not list and which
/// emit no `payout.*` events (their invoice reports them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayoutKind {
    /// Requested through `POST /v1/payouts`, sent from the config's `key`.
    #[default]
    Merchant,
    /// TRX from the sweep gas key to a deposit address, for the sweep's energy.
    Gas,
    /// A deposit address's whole balance to the collection address.
    Sweep,
}

impl PayoutKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutKind::Merchant => "merchant",
            PayoutKind::Gas => "gas",
            PayoutKind::Sweep => "sweep",
        }
    }
}

/// A payout request and everything that happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    /// The id the tenant chose; unique within the tenant only.
    pub id: String,
    /// The tenant of the API key that created it: only that tenant's keys see it.
    pub tenant: String,
    /// The id of the API key that created it (never the secret).
    pub created_by: String,
    pub asset: Asset,
    /// Destination, Base58.
    pub to: String,
    /// Base units (sun or USDT units).
    pub amount_units: u64,
    pub status: Status,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub attempts: Vec<Attempt>,
    pub denial: Option<Reason>,
    pub failure: Option<Reason>,
    pub block_number: Option<u64>,
    pub block_timestamp_ms: Option<i64>,
    pub history: Vec<Transition>,
    #[serde(default)]
    pub kind: PayoutKind,
    /// The sending key (Base58); `None`: the config's `key`. The signer decides whether
    /// the key may send this; it is named here so a payout is built and checked against
    /// the key it was created for, whatever the config says later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The HD index the signer derives the key from (a deposit key), or of the deposit
    /// address a gas key funds; sent as `SignRequest.deposit_index`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposit_index: Option<u32>,
    /// This payout's `fee_limit` (sun, TRC-20 only); `None`: the config's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_limit_sun: Option<i64>,
}

impl Payout {
    pub fn new(
        owner: &Owner,
        id: String,
        asset: Asset,
        to: String,
        amount_units: u64,
        now_ms: i64,
    ) -> Payout {
        Payout {
            id,
            tenant: owner.tenant.clone(),
            created_by: owner.key_id.clone(),
            asset,
            to,
            amount_units,
            status: Status::Queued,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            attempts: Vec::new(),
            denial: None,
            failure: None,
            block_number: None,
            block_timestamp_ms: None,
            history: vec![Transition {
                status: Status::Queued,
                at_ms: now_ms,
                note: "accepted".into(),
            }],
            kind: PayoutKind::Merchant,
            from: None,
            deposit_index: None,
            fee_limit_sun: None,
        }
    }

    /// `<tenant>/<id>`: the payout's key in the database, and the payout id the signer and
    /// batch files see, so two tenants' equal ids never meet there either.
    pub fn key(&self) -> String {
        scoped_key(&self.tenant, &self.id)
    }

    /// The transaction currently in play, if any.
    pub fn current(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    pub fn current_mut(&mut self) -> Option<&mut Attempt> {
        self.attempts.last_mut()
    }

    /// Same request? Used for idempotent creation.
    pub fn same_request(&self, asset: Asset, to: &str, amount_units: u64) -> bool {
        self.asset == asset && self.to == to && self.amount_units == amount_units
    }

    /// Records a status change with its time and a note.
    pub fn transition(&mut self, status: Status, now_ms: i64, note: impl Into<String>) {
        self.status = status;
        self.updated_at_ms = now_ms;
        self.history.push(Transition {
            status,
            at_ms: now_ms,
            note: note.into(),
        });
    }
}

/// Who creates a payout: the tenant it belongs to and the API key that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub tenant: String,
    pub key_id: String,
}

/// The key of payout `id` of `tenant` (see [`Payout::key`]).
pub fn scoped_key(tenant: &str, id: &str) -> String {
    format!("{tenant}{KEY_SEPARATOR}{id}")
}

/// Milliseconds since the Unix epoch, by this machine's clock (for bookkeeping only:
/// expiry decisions use the node's head block time).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
