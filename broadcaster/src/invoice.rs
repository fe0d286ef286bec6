//! Invoices: what a merchant asked to be paid, the payments seen at its deposit address,
//! and the status that follows from them. Pure: no I/O, the clock is a parameter.
//!
//! Why the status is recomputed from the payments instead of being stepped by events:
//! payments can be un-seen (a replaced block) and seen again, settle in any order, or
//! arrive after the invoice closed; a status derived from the full list each time cannot
//! drift from it. The rule ([`Invoice::evaluate`]), first match wins, with
//! `need = amount - tolerance` and only payments in the invoice's asset counted:
//!
//! 1. settled (solidified) total `>= need`: `paid_late` if the payment that reached
//!    `need` is in a block timed after the expiry, else `overpaid` if the settled total
//!    exceeds `amount + tolerance`, else `paid`;
//! 2. settled plus seen-but-not-solid total `>= need`: `seen`;
//! 3. the expiry has passed: `expired` (the amounts stay in the view);
//! 4. anything seen or settled: `partially_paid`;
//! 5. otherwise `new`.
//!
//! Block time, not arrival time, decides lateness: a payment mined before the expiry but
//! solidified after it is on time. A payment in another asset (TRX to a USDT invoice) is
//! recorded and shown but never counted. Payments after the invoice closed are recorded
//! with `after_close`, never dropped.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Value};
use tron_proto::U256;

use crate::amount::DECIMALS;
use crate::model::{scoped_key, Asset};
use crate::sweep::Sweep;

/// Base units as the canonical decimal (`"12.5"`).
pub fn decimal(units: U256) -> String {
    tron_proto::amount::format(units, DECIMALS)
}

/// An invoice's status; see the module doc for the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    New,
    Seen,
    PartiallyPaid,
    Paid,
    Overpaid,
    PaidLate,
    Expired,
}

impl InvoiceStatus {
    pub const ALL: [InvoiceStatus; 7] = [
        InvoiceStatus::New,
        InvoiceStatus::Seen,
        InvoiceStatus::PartiallyPaid,
        InvoiceStatus::Paid,
        InvoiceStatus::Overpaid,
        InvoiceStatus::PaidLate,
        InvoiceStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::New => "new",
            InvoiceStatus::Seen => "seen",
            InvoiceStatus::PartiallyPaid => "partially_paid",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Overpaid => "overpaid",
            InvoiceStatus::PaidLate => "paid_late",
            InvoiceStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<InvoiceStatus> {
        InvoiceStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Closed: the merchant has its answer. Payments still arrive and are recorded.
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            InvoiceStatus::Paid
                | InvoiceStatus::Overpaid
                | InvoiceStatus::PaidLate
                | InvoiceStatus::Expired
        )
    }

    /// The webhook event a change to this status emits.
    pub fn event_type(self) -> &'static str {
        match self {
            InvoiceStatus::New => "invoice.new",
            InvoiceStatus::Seen => "invoice.seen",
            InvoiceStatus::PartiallyPaid => "invoice.partially_paid",
            InvoiceStatus::Paid => "invoice.paid",
            InvoiceStatus::Overpaid => "invoice.overpaid",
            InvoiceStatus::PaidLate => "invoice.paid_late",
            InvoiceStatus::Expired => "invoice.expired",
        }
    }
}

/// Where a payment stands on the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    /// In a block the node has, above the solidified height.
    Seen,
    /// In a solidified block: final.
    Settled,
    /// Its block was replaced; kept for the record, counted nowhere.
    Unseen,
}

/// U256 amounts as decimal strings in JSON (they may exceed every JSON number).
pub mod u256_string {
    use super::*;

    pub fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let text = String::deserialize(d)?;
        U256::from_str_radix(&text, 10).map_err(serde::de::Error::custom)
    }
}

/// One payment to the invoice's address; `key` is `<txid hex>:<log index>` for a token
/// log and `<txid hex>:trx` for a TRX transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub key: String,
    pub txid: String,
    pub log_index: Option<u32>,
    pub asset: Asset,
    #[serde(with = "u256_string")]
    pub amount_units: U256,
    pub block_number: u64,
    pub block_id: String,
    pub block_timestamp_ms: i64,
    pub state: PaymentState,
    /// The invoice was already closed when this payment was first seen.
    pub after_close: bool,
    pub first_seen_ms: i64,
}

/// The key of a credit: `<txid hex>:<log index>` or `<txid hex>:trx`.
pub fn payment_key(txid: &[u8; 32], log_index: Option<u32>) -> String {
    match log_index {
        Some(i) => format!("{}:{i}", hex::encode(txid)),
        None => format!("{}:trx", hex::encode(txid)),
    }
}

/// How a create request named the expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryRequest {
    /// `expires_in`, in milliseconds.
    In(u64),
    /// `expires_at`, Unix milliseconds.
    At(i64),
    /// Neither: the configured default.
    Default,
}

/// A status change, for the record and for webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: InvoiceStatus,
    pub at_ms: i64,
}

/// What a merchant asked for, and what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub tenant: String,
    /// The merchant's own id: its idempotency key within the tenant.
    pub id: String,
    pub created_by: String,
    pub asset: Asset,
    pub amount_units: u64,
    pub tolerance_units: u64,
    /// The expiry as the request gave it, so a retried request with a relative expiry is
    /// still the same request.
    pub expiry: ExpiryRequest,
    pub expires_at_ms: i64,
    pub reference: Option<String>,
    /// A JSON object the merchant attached; returned as given.
    pub metadata: serde_json::Value,
    pub deposit_index: u32,
    pub address: String,
    pub status: InvoiceStatus,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub payments: Vec<Payment>,
    pub history: Vec<StatusChange>,
    /// The sweeps of its deposit address, oldest round first ([`crate::sweep`]).
    #[serde(default)]
    pub sweeps: Vec<Sweep>,
}

/// The totals the status rule looks at, in base units of the invoice's asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub settled: U256,
    pub pending: U256,
}

impl Invoice {
    pub fn key(&self) -> String {
        scoped_key(&self.tenant, &self.id)
    }

    /// The fields that make a create request the same request (for idempotency).
    pub fn same_request(&self, other: &Invoice) -> bool {
        self.asset == other.asset
            && self.amount_units == other.amount_units
            && self.tolerance_units == other.tolerance_units
            && self.expiry == other.expiry
            && self.reference == other.reference
            && self.metadata == other.metadata
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for p in self.payments.iter().filter(|p| p.asset == self.asset) {
            match p.state {
                PaymentState::Settled => t.settled = t.settled.saturating_add(p.amount_units),
                PaymentState::Seen => t.pending = t.pending.saturating_add(p.amount_units),
                PaymentState::Unseen => {}
            }
        }
        t
    }

    /// The status the payments and the clock say (module doc).
    pub fn evaluate(&self, now_ms: i64) -> InvoiceStatus {
        let need = U256::from(self.amount_units.saturating_sub(self.tolerance_units));
        let most = U256::from(self.amount_units).saturating_add(U256::from(self.tolerance_units));
        let t = self.totals();
        if t.settled >= need {
            if self
                .completing_block_time()
                .is_some_and(|ts| ts > self.expires_at_ms)
            {
                return InvoiceStatus::PaidLate;
            }
            if t.settled > most {
                return InvoiceStatus::Overpaid;
            }
            return InvoiceStatus::Paid;
        }
        if t.settled.saturating_add(t.pending) >= need {
            return InvoiceStatus::Seen;
        }
        if now_ms >= self.expires_at_ms {
            return InvoiceStatus::Expired;
        }
        if t.settled.saturating_add(t.pending) > U256::ZERO {
            return InvoiceStatus::PartiallyPaid;
        }
        InvoiceStatus::New
    }

    /// Block time of the settled payment that brought the settled total to `need`, in
    /// block order.
    fn completing_block_time(&self) -> Option<i64> {
        let need = U256::from(self.amount_units.saturating_sub(self.tolerance_units));
        let mut settled: Vec<&Payment> = self
            .payments
            .iter()
            .filter(|p| p.asset == self.asset && p.state == PaymentState::Settled)
            .collect();
        settled.sort_by(|a, b| (a.block_number, &a.key).cmp(&(b.block_number, &b.key)));
        let mut sum = U256::ZERO;
        for p in settled {
            sum = sum.saturating_add(p.amount_units);
            if sum >= need {
                return Some(p.block_timestamp_ms);
            }
        }
        None
    }

    /// Re-evaluates; on a change records it and returns the new status.
    pub fn refresh(&mut self, now_ms: i64) -> Option<InvoiceStatus> {
        let status = self.evaluate(now_ms);
        if status == self.status {
            return None;
        }
        self.status = status;
        self.updated_at_ms = now_ms;
        self.history.push(StatusChange {
            status,
            at_ms: now_ms,
        });
        Some(status)
    }

    /// Records a payment or moves a known one to `state` (same key: same payment, maybe in
    /// a new block after a reorg). Returns whether anything changed, and whether the
    /// payment is new and arrived after the invoice closed.
    pub fn upsert_payment(&mut self, p: Payment) -> (bool, bool) {
        if let Some(old) = self.payments.iter_mut().find(|q| q.key == p.key) {
            let changed = old.state != p.state
                || old.block_id != p.block_id
                || old.block_number != p.block_number;
            if changed {
                old.state = p.state;
                old.block_id = p.block_id;
                old.block_number = p.block_number;
                old.block_timestamp_ms = p.block_timestamp_ms;
            }
            return (changed, false);
        }
        let after_close = self.status.is_closed();
        self.payments.push(Payment { after_close, ..p });
        (true, after_close)
    }

    /// The invoice as the API and webhooks show it. Amounts are decimal strings with
    /// their base units beside them.
    pub fn view(&self) -> Value {
        let t = self.totals();
        let amount = U256::from(self.amount_units);
        let received = t.settled;
        json!({
            "id": self.id,
            "created_by": self.created_by,
            "asset": self.asset,
            "amount": decimal(amount),
            "amount_units": self.amount_units.to_string(),
            "tolerance": decimal(U256::from(self.tolerance_units)),
            "expires_at": self.expires_at_ms,
            "reference": self.reference,
            "metadata": self.metadata,
            "deposit_index": self.deposit_index,
            "address": self.address,
            "status": self.status,
            "paid": decimal(received),
            "paid_units": received.to_string(),
            "pending": decimal(t.pending),
            "pending_units": t.pending.to_string(),
            "overpaid": decimal(received.saturating_sub(amount)),
            "underpaid": decimal(amount.saturating_sub(received)),
            "created_at": self.created_at_ms,
            "updated_at": self.updated_at_ms,
            "payments": self.payments.iter().map(|p| json!({
                "txid": p.txid,
                "log_index": p.log_index,
                "asset": p.asset,
                "counted": p.asset == self.asset && p.state != PaymentState::Unseen,
                "amount": decimal(p.amount_units),
                "amount_units": p.amount_units.to_string(),
                "block_number": p.block_number,
                "block_id": p.block_id,
                "block_timestamp": p.block_timestamp_ms,
                "state": p.state,
                "after_close": p.after_close,
                "first_seen_at": p.first_seen_ms,
            })).collect::<Vec<_>>(),
            "history": self.history.iter().map(|h| json!({"status": h.status, "at": h.at_ms})).collect::<Vec<_>>(),
            "sweep": self.sweeps.last().map(Sweep::view),
            "sweeps": self.sweeps.iter().map(Sweep::view).collect::<Vec<_>>(),
        })
    }

    /// Sets the state of payment `key`; false if unknown or unchanged.
    pub fn set_payment_state(&mut self, key: &str, state: PaymentState) -> bool {
        match self.payments.iter_mut().find(|p| p.key == key) {
            Some(p) if p.state != state => {
                p.state = state;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPIRES: i64 = 10_000;

    fn invoice(amount: u64, tolerance: u64) -> Invoice {
        Invoice {
            tenant: "shop".into(),
            id: "inv-1".into(),
            created_by: "k".into(),
            asset: Asset::Usdt,
            amount_units: amount,
            tolerance_units: tolerance,
            expiry: ExpiryRequest::At(EXPIRES),
            expires_at_ms: EXPIRES,
            reference: None,
            metadata: serde_json::json!({}),
            deposit_index: 0,
            address: "T".into(),
            status: InvoiceStatus::New,
            created_at_ms: 0,
            updated_at_ms: 0,
            payments: vec![],
            history: vec![],
            sweeps: vec![],
        }
    }

    fn pay(n: u8, asset: Asset, amount: u64, block: u64, ts: i64, state: PaymentState) -> Payment {
        Payment {
            key: format!("{n}"),
            txid: format!("{n}"),
            log_index: Some(0),
            asset,
            amount_units: U256::from(amount),
            block_number: block,
            block_id: format!("b{block}"),
            block_timestamp_ms: ts,
            state,
            after_close: false,
            first_seen_ms: ts,
        }
    }

    use PaymentState::{Seen, Settled, Unseen};

    #[test]
    fn the_status_rule_in_order() {
        let mut i = invoice(100, 0);
        assert_eq!(i.evaluate(0), InvoiceStatus::New);
        assert_eq!(i.evaluate(EXPIRES), InvoiceStatus::Expired);
        i.upsert_payment(pay(1, Asset::Usdt, 40, 5, 1, Seen));
        assert_eq!(i.evaluate(0), InvoiceStatus::PartiallyPaid);
        i.upsert_payment(pay(2, Asset::Usdt, 60, 6, 2, Seen));
        assert_eq!(i.evaluate(0), InvoiceStatus::Seen);
        // Mined before the expiry: still seen after it, and paid (not late) once solid.
        assert_eq!(i.evaluate(EXPIRES + 5), InvoiceStatus::Seen);
        i.set_payment_state("1", Settled);
        assert_eq!(i.evaluate(0), InvoiceStatus::Seen);
        i.set_payment_state("2", Settled);
        assert_eq!(i.evaluate(EXPIRES + 5), InvoiceStatus::Paid);
        i.upsert_payment(pay(3, Asset::Usdt, 1, 7, 3, Settled));
        assert_eq!(i.evaluate(0), InvoiceStatus::Overpaid);
    }

    #[test]
    fn tolerance_lets_a_fee_deducted_payment_count_and_bounds_overpayment() {
        let mut i = invoice(1_000_000, 10_000);
        i.upsert_payment(pay(1, Asset::Usdt, 990_000, 5, 1, Settled));
        assert_eq!(i.evaluate(0), InvoiceStatus::Paid);
        let mut j = invoice(1_000_000, 10_000);
        j.upsert_payment(pay(1, Asset::Usdt, 989_999, 5, 1, Settled));
        assert_eq!(j.evaluate(0), InvoiceStatus::PartiallyPaid);
        let mut k = invoice(1_000_000, 10_000);
        k.upsert_payment(pay(1, Asset::Usdt, 1_010_000, 5, 1, Settled));
        assert_eq!(k.evaluate(0), InvoiceStatus::Paid);
        k.upsert_payment(pay(2, Asset::Usdt, 1, 6, 1, Settled));
        assert_eq!(k.evaluate(0), InvoiceStatus::Overpaid);
    }

    #[test]
    fn paid_late_is_decided_by_the_block_that_completed_it() {
        let mut i = invoice(100, 0);
        i.upsert_payment(pay(1, Asset::Usdt, 50, 5, EXPIRES - 1, Settled));
        assert_eq!(i.evaluate(EXPIRES + 1), InvoiceStatus::Expired);
        i.status = InvoiceStatus::Expired;
        let (changed, after_close) =
            i.upsert_payment(pay(2, Asset::Usdt, 50, 9, EXPIRES + 1, Settled));
        assert!(changed && after_close);
        assert_eq!(i.evaluate(EXPIRES + 2), InvoiceStatus::PaidLate);
        assert!(i.payments[1].after_close);
    }

    #[test]
    fn another_asset_or_an_unseen_payment_never_counts() {
        let mut i = invoice(100, 0);
        i.upsert_payment(pay(1, Asset::Trx, 1_000, 5, 1, Settled));
        i.upsert_payment(pay(2, Asset::Usdt, 100, 5, 1, Unseen));
        assert_eq!(i.evaluate(0), InvoiceStatus::New);
        assert_eq!(i.payments.len(), 2, "recorded, not dropped");
        // Seen again in the replacement block: counts again.
        let (changed, _) = i.upsert_payment(pay(2, Asset::Usdt, 100, 6, 1, Seen));
        assert!(changed);
        assert_eq!(i.payments.len(), 2);
        assert_eq!(i.payments[1].block_number, 6);
        assert_eq!(i.evaluate(0), InvoiceStatus::Seen);
    }

    #[test]
    fn refresh_records_each_change_once() {
        let mut i = invoice(100, 0);
        assert_eq!(i.refresh(1), None);
        i.upsert_payment(pay(1, Asset::Usdt, 100, 5, 1, Seen));
        assert_eq!(i.refresh(2), Some(InvoiceStatus::Seen));
        assert_eq!(i.refresh(3), None);
        i.set_payment_state("1", Settled);
        assert_eq!(i.refresh(4), Some(InvoiceStatus::Paid));
        assert_eq!(i.history.len(), 2);
        assert_eq!(
            i.history[1],
            StatusChange {
                status: InvoiceStatus::Paid,
                at_ms: 4
            }
        );
    }

    #[test]
    fn statuses_parse_and_keys_are_stable() {
        for s in InvoiceStatus::ALL {
            assert_eq!(InvoiceStatus::parse(s.as_str()), Some(s));
            assert_eq!(s.event_type(), format!("invoice.{}", s.as_str()));
        }
        assert_eq!(InvoiceStatus::parse("done"), None);
        assert_eq!(
            payment_key(&[0xab; 32], Some(3)),
            format!("{}:3", "ab".repeat(32))
        );
        assert_eq!(
            payment_key(&[0xab; 32], None),
            format!("{}:trx", "ab".repeat(32))
        );
    }
}
