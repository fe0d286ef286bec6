//! Intent + usage + clock to a decision. Pure: no I/O, no clock reads, no panics.
//!
//! Checks run in a fixed order (freeze, key, owner, asset, destination, amount, per-tx,
//! envelope, then destination windows and key windows) so that the reason given for a
//! refusal is predictable and the cheap checks come before the ledger lookups.

use std::fmt;

use tron_proto::{Address, U256};

use super::amount::format_amount;
use super::landing::lookback_ms;
use std::borrow::Cow;

use super::model::{
    AssetInfo, DepositAccount, Destination, DestinationAsset, KeyAsset, KeyPolicy, Policy, Window,
};
use crate::decode::{Asset, Decoded};
use crate::reason::ReasonCode;

/// Rolling-window usage, supplied by the ledger.
pub trait Usage {
    /// Base units of `asset` signed by `key` (only to `dest` when Some) whose expiration is
    /// at or after `now_ms - lookback_ms`. The policy asks with
    /// [`lookback_ms`](super::landing::lookback_ms) (window plus clock skew), so a window
    /// counts everything that can still land inside it.
    ///
    /// An implementation that cannot answer (storage error) must fail closed, for example by
    /// returning `U256::MAX`, so the request is refused rather than allowed.
    fn used(
        &self,
        key: &Address,
        asset: &Asset,
        dest: Option<&Address>,
        lookback_ms: u64,
        now_ms: i64,
    ) -> U256;
}

/// What is being asked: sign `decoded` with `key`, at the signer's time `now_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub key: &'a Address,
    pub decoded: &'a Decoded,
    /// The signer's clock, milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// The request's HD index: with a key that is no `[[key]]`, the deposit key's own
    /// index; with a gas key, the deposit address it funds.
    pub deposit_index: Option<u32>,
}

/// The outcome of [`Policy::evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Allow),
    Deny(Deny),
}

/// Allowed, and by which rule (recorded in the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    /// e.g. `key TPX…/destination "exchange hot wallet"/USDT`.
    pub rule: String,
}

/// Refused: a stable code for machines and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny {
    pub code: DenyCode,
    pub message: String,
}

/// Why the policy refused a request: the [`ReasonCode`]s of the `Policy` category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyCode {
    Frozen,
    UnknownKey,
    OwnerMismatch,
    AssetNotAllowed,
    DestinationNotAllowed,
    DestinationAssetNotAllowed,
    ZeroAmount,
    OverPerTxMax,
    FeeLimitTooHigh,
    ExpirationTooFar,
    Expired,
    TimestampInFuture,
    MemoNotAllowed,
    MemoTooLong,
    OverDestinationWindow,
    OverKeyWindow,
    DepositIndexOutOfRange,
    DepositAddressMismatch,
    GasDestinationMismatch,
    DepositIndexUnexpected,
}

impl DenyCode {
    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [DenyCode; 20] = [
        DenyCode::Frozen,
        DenyCode::UnknownKey,
        DenyCode::OwnerMismatch,
        DenyCode::AssetNotAllowed,
        DenyCode::DestinationNotAllowed,
        DenyCode::DestinationAssetNotAllowed,
        DenyCode::ZeroAmount,
        DenyCode::OverPerTxMax,
        DenyCode::FeeLimitTooHigh,
        DenyCode::ExpirationTooFar,
        DenyCode::Expired,
        DenyCode::TimestampInFuture,
        DenyCode::MemoNotAllowed,
        DenyCode::MemoTooLong,
        DenyCode::OverDestinationWindow,
        DenyCode::OverKeyWindow,
        DenyCode::DepositIndexOutOfRange,
        DenyCode::DepositAddressMismatch,
        DenyCode::GasDestinationMismatch,
        DenyCode::DepositIndexUnexpected,
    ];

    /// The code in the signer's one reason-code list.
    pub const fn reason(self) -> ReasonCode {
        match self {
            DenyCode::Frozen => ReasonCode::Frozen,
            DenyCode::UnknownKey => ReasonCode::UnknownKey,
            DenyCode::OwnerMismatch => ReasonCode::OwnerMismatch,
            DenyCode::AssetNotAllowed => ReasonCode::AssetNotAllowed,
            DenyCode::DestinationNotAllowed => ReasonCode::DestinationNotAllowed,
            DenyCode::DestinationAssetNotAllowed => ReasonCode::DestinationAssetNotAllowed,
            DenyCode::ZeroAmount => ReasonCode::ZeroAmount,
            DenyCode::OverPerTxMax => ReasonCode::OverPerTxMax,
            DenyCode::FeeLimitTooHigh => ReasonCode::FeeLimitTooHigh,
            DenyCode::ExpirationTooFar => ReasonCode::ExpirationTooFar,
            DenyCode::Expired => ReasonCode::Expired,
            DenyCode::TimestampInFuture => ReasonCode::TimestampInFuture,
            DenyCode::MemoNotAllowed => ReasonCode::MemoNotAllowed,
            DenyCode::MemoTooLong => ReasonCode::MemoTooLong,
            DenyCode::OverDestinationWindow => ReasonCode::OverDestinationWindow,
            DenyCode::OverKeyWindow => ReasonCode::OverKeyWindow,
            DenyCode::DepositIndexOutOfRange => ReasonCode::DepositIndexOutOfRange,
            DenyCode::DepositAddressMismatch => ReasonCode::DepositAddressMismatch,
            DenyCode::GasDestinationMismatch => ReasonCode::GasDestinationMismatch,
            DenyCode::DepositIndexUnexpected => ReasonCode::DepositIndexUnexpected,
        }
    }

    pub const fn as_str(self) -> &'static str {
        self.reason().as_str()
    }
}

impl fmt::Display for DenyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Decision {
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// The deny code, if refused.
    pub fn deny_code(&self) -> Option<DenyCode> {
        match self {
            Decision::Allow(_) => None,
            Decision::Deny(d) => Some(d.code),
        }
    }
}

fn deny(code: DenyCode, message: String) -> Decision {
    Decision::Deny(Deny { code, message })
}

/// Milliseconds as a duration a person reads ("90s", "2h"), rounding down below a second.
fn human_ms(ms: i128) -> String {
    let ms = u64::try_from(ms.max(0)).unwrap_or(u64::MAX);
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let secs = ms / 1_000;
    if secs % 3_600 == 0 {
        format!("{}h", secs / 3_600)
    } else if secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

impl Policy {
    /// Decides on `req`; see the module docs for the order of checks.
    pub fn evaluate(&self, req: &Request<'_>, usage: &dyn Usage) -> Decision {
        if self.frozen {
            return deny(
                DenyCode::Frozen,
                "all keys are frozen by the policy's global freeze switch".into(),
            );
        }
        let key: Cow<'_, KeyPolicy> = match (self.key(req.key), req.deposit_index) {
            (Some(k), None) => Cow::Borrowed(k),
            (Some(k), Some(i)) if k.gas_for.is_none() => {
                return deny(
                    DenyCode::DepositIndexUnexpected,
                    format!(
                        "the request names deposit index {i}, but key {} ({}) is not a gas key (no gas_for)",
                        k.address, k.label
                    ),
                )
            }
            (Some(k), Some(_)) => Cow::Borrowed(k),
            (None, Some(i)) => match self.deposit_account_for(req.key, i) {
                Ok(account) => Cow::Owned(account.key_policy(*req.key, i)),
                Err(d) => return Decision::Deny(d),
            },
            (None, None) => {
                return deny(
                    DenyCode::UnknownKey,
                    format!("the policy has no section for key {}", req.key),
                )
            }
        };
        if key.frozen {
            return deny(
                DenyCode::Frozen,
                format!(
                    "key {} ({}) is frozen by the policy",
                    key.address, key.label
                ),
            );
        }
        let intent = &req.decoded.intent;
        if intent.owner() != req.key {
            return deny(
                DenyCode::OwnerMismatch,
                format!(
                    "the transaction's owner is {} but signing was requested with key {}",
                    intent.owner(),
                    req.key
                ),
            );
        }
        let asset = intent.asset();
        let Some(info) = self
            .asset_info(&asset)
            .filter(|_| key.asset(&asset).is_some())
        else {
            let name = match self.asset_info(&asset) {
                Some(i) if asset != Asset::Trx => format!("{} ({asset})", i.symbol),
                _ => asset.to_string(),
            };
            return deny(
                DenyCode::AssetNotAllowed,
                format!("key {} may not send {name}", key.address),
            );
        };
        let to = intent.to();
        let dest: Cow<'_, Destination> = match (&key.gas_for, req.deposit_index) {
            (Some(gas), Some(i)) if self.key(req.key).is_some() => {
                match self.gas_destination(&key, gas, to, i) {
                    Ok(d) => Cow::Owned(d),
                    Err(d) => return d,
                }
            }
            _ => match key.destination(to) {
                Some(d) => Cow::Borrowed(d),
                None => {
                    return deny(
                        DenyCode::DestinationNotAllowed,
                        format!(
                            "{to} is not on the destination allowlist of key {}",
                            key.address
                        ),
                    )
                }
            },
        };
        let Some(dest_asset) = dest.asset(&asset) else {
            return deny(
                DenyCode::DestinationAssetNotAllowed,
                format!(
                    "destination {:?} ({to}) may not receive {} from key {}",
                    dest.label, info.symbol, key.address
                ),
            );
        };
        let amount = intent.amount();
        let human = |v: U256| format!("{} {}", format_amount(v, info.decimals), info.symbol);
        if amount == U256::ZERO {
            return deny(DenyCode::ZeroAmount, "the transfer amount is zero".into());
        }
        if amount > dest_asset.per_tx_max {
            return deny(
                DenyCode::OverPerTxMax,
                format!(
                    "{} is above the per-transaction maximum of {} to {:?}",
                    human(amount),
                    human(dest_asset.per_tx_max),
                    dest.label
                ),
            );
        }
        if let Some(d) = envelope(&key, req) {
            return d;
        }
        let skew_ms = key.envelope.clock_skew_ms;
        for w in &dest_asset.windows {
            let back = lookback_ms(w.window_ms, skew_ms);
            let used = usage.used(req.key, &asset, Some(to), back, req.now_ms);
            if over(used, amount, w) {
                return deny(
                    DenyCode::OverDestinationWindow,
                    window_message(
                        w,
                        info,
                        &format!("destination {:?} ({to}) of key {}", dest.label, key.address),
                        used,
                        amount,
                    ),
                );
            }
        }
        let key_windows = key.asset(&asset).map_or(&[][..], |a| &a.windows[..]);
        for w in key_windows {
            let back = lookback_ms(w.window_ms, skew_ms);
            let used = usage.used(req.key, &asset, None, back, req.now_ms);
            if over(used, amount, w) {
                return deny(
                    DenyCode::OverKeyWindow,
                    window_message(w, info, &format!("key {}", key.address), used, amount),
                );
            }
        }
        Decision::Allow(Allow {
            rule: format!(
                "key {}/destination {:?}/{}",
                key.address, dest.label, info.symbol
            ),
        })
    }
}

impl Policy {
    /// The deposit account whose key at `index` is `key`: the policy derives the address
    /// from the account xpub itself, so a request cannot name a key the account does not
    /// hold.
    pub fn deposit_account_for(&self, key: &Address, index: u32) -> Result<&DepositAccount, Deny> {
        let mut in_range = self
            .deposit_accounts
            .iter()
            .filter(|a| (a.first_index..=a.last_index).contains(&index))
            .peekable();
        if in_range.peek().is_none() {
            return Err(Deny {
                code: DenyCode::DepositIndexOutOfRange,
                message: format!(
                    "deposit index {index} is outside the index range of every [[deposit_account]]"
                ),
            });
        }
        in_range
            .find(|a| a.xpub.address(index).is_ok_and(|derived| derived == *key))
            .ok_or_else(|| Deny {
                code: DenyCode::DepositAddressMismatch,
                message: format!(
                    "{key} is not the address any deposit account derives at index {index}"
                ),
            })
    }

    /// The destination a gas key funds: the deposit address at `index` of its account,
    /// for TRX only, up to its gas cap.
    fn gas_destination(
        &self,
        key: &KeyPolicy,
        gas: &super::model::GasFor,
        to: &Address,
        index: u32,
    ) -> Result<Destination, Decision> {
        let account = self.deposit_account(&gas.account).ok_or_else(|| {
            deny(
                DenyCode::GasDestinationMismatch,
                format!(
                    "key {} funds deposit account {:?}, which the policy does not define",
                    key.address, gas.account
                ),
            )
        })?;
        if !(account.first_index..=account.last_index).contains(&index) {
            return Err(deny(
                DenyCode::DepositIndexOutOfRange,
                format!(
                    "deposit index {index} is outside the range {}..={} of deposit account {:?}",
                    account.first_index, account.last_index, account.name
                ),
            ));
        }
        match account.xpub.address(index) {
            Ok(derived) if derived == *to => Ok(Destination {
                address: derived,
                label: format!("deposit address #{index} of {}", account.name),
                assets: vec![DestinationAsset {
                    asset: Asset::Trx,
                    per_tx_max: gas.per_tx_max,
                    windows: Vec::new(),
                }],
            }),
            _ => Err(deny(
                DenyCode::GasDestinationMismatch,
                format!(
                    "gas key {} may fund only deposit address #{index} of {:?}, not {to}",
                    key.address, account.name
                ),
            )),
        }
    }
}

impl DepositAccount {
    /// The rules deposit key `address` (at `index`) signs under: the account's assets with
    /// no windows (a sweep moves what arrived), the collection address as the only
    /// destination with no per-transaction cap, the account's transaction rules.
    pub fn key_policy(&self, address: Address, index: u32) -> KeyPolicy {
        let collection = Destination {
            address: self.collection,
            label: format!("collection address of {}", self.name),
            assets: self
                .assets
                .iter()
                .map(|a| DestinationAsset {
                    asset: *a,
                    per_tx_max: U256::MAX,
                    windows: Vec::new(),
                })
                .collect(),
        };
        KeyPolicy {
            address,
            label: format!("deposit key #{index} of {}", self.name),
            frozen: false,
            assets: self
                .assets
                .iter()
                .map(|a| KeyAsset {
                    asset: *a,
                    windows: Vec::new(),
                })
                .collect(),
            destinations: vec![collection],
            destination_index: std::iter::once((self.collection, 0)).collect(),
            envelope: self.envelope.clone(),
            gas_for: None,
        }
    }
}

/// used + amount > max, where an overflowing sum is over.
fn over(used: U256, amount: U256, w: &Window) -> bool {
    used.checked_add(amount).is_none_or(|total| total > w.max)
}

fn window_message(w: &Window, info: &AssetInfo, whom: &str, used: U256, amount: U256) -> String {
    format!(
        "would exceed the {} {} limit of {} for {whom}: used {}, asked {}",
        w.label,
        info.symbol,
        format_amount(w.max, info.decimals),
        format_amount(used, info.decimals),
        format_amount(amount, info.decimals)
    )
}

/// Fee, expiration, timestamp and memo checks. i128 arithmetic: no input can overflow it.
fn envelope(key: &KeyPolicy, req: &Request<'_>) -> Option<Decision> {
    let e = &req.decoded.envelope;
    let rules = &key.envelope;
    let trx = |sun: u64| format_amount(U256::from(sun), super::load::TRX_DECIMALS);
    let fee = u64::try_from(e.fee_limit).unwrap_or(u64::MAX);
    if e.fee_limit < 0 || fee > rules.max_fee_limit {
        return Some(deny(
            DenyCode::FeeLimitTooHigh,
            format!(
                "fee_limit {} TRX is above the maximum of {} TRX for key {}",
                if e.fee_limit < 0 {
                    e.fee_limit.to_string()
                } else {
                    trx(fee)
                },
                trx(rules.max_fee_limit),
                key.address
            ),
        ));
    }
    let now = i128::from(req.now_ms);
    let skew = i128::from(rules.clock_skew_ms);
    let expiration = i128::from(e.expiration);
    let latest = now + i128::from(rules.max_expiration_ms) + skew;
    if expiration > latest {
        return Some(deny(
            DenyCode::ExpirationTooFar,
            format!(
                "expiration is {} ahead of the signer's clock; at most {} (+{} skew) is allowed",
                human_ms(expiration - now),
                super::duration::format_duration(rules.max_expiration_ms),
                super::duration::format_duration(rules.clock_skew_ms)
            ),
        ));
    }
    if expiration < now - skew {
        return Some(deny(
            DenyCode::Expired,
            format!(
                "the transaction expired {} before the signer's clock (allowed skew {})",
                human_ms(now - expiration),
                super::duration::format_duration(rules.clock_skew_ms)
            ),
        ));
    }
    let timestamp = i128::from(e.timestamp);
    if timestamp > now + skew {
        return Some(deny(
            DenyCode::TimestampInFuture,
            format!(
                "the transaction timestamp is {} ahead of the signer's clock (allowed skew {})",
                human_ms(timestamp - now),
                super::duration::format_duration(rules.clock_skew_ms)
            ),
        ));
    }
    if !e.memo.is_empty() {
        if !rules.memo_allowed {
            return Some(deny(
                DenyCode::MemoNotAllowed,
                format!("key {} may not send transactions with a memo", key.address),
            ));
        }
        if e.memo.len() > rules.max_memo_len {
            return Some(deny(
                DenyCode::MemoTooLong,
                format!(
                    "the memo is {} bytes; key {} allows at most {}",
                    e.memo.len(),
                    key.address,
                    rules.max_memo_len
                ),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::DenyCode;
    use crate::reason::{Category, ReasonCode};
    use std::collections::BTreeSet;

    /// The policy's deny codes are exactly the `Policy` category of the one code list.
    #[test]
    fn deny_codes_are_the_policy_reason_codes() {
        let deny: BTreeSet<ReasonCode> = DenyCode::ALL.iter().map(|d| d.reason()).collect();
        assert_eq!(deny.len(), DenyCode::ALL.len());
        let listed: BTreeSet<ReasonCode> = ReasonCode::ALL
            .iter()
            .copied()
            .filter(|c| c.category() == Category::Policy)
            .collect();
        assert_eq!(deny, listed);
    }
}
