//! The validated, in-memory policy. Only the loader builds these, so every value here has
//! already passed the consistency checks listed in `policies/README.md`.

use std::collections::HashMap;

use tron_proto::hd::AccountXpub;
use tron_proto::{Address, U256};

use super::approval::{quorum, ApprovalRule, Approver, Quorum};
use super::caller::{recognise, CallerPolicy, Presented, Recognised};
use crate::decode::Asset;

/// Everything the signer may do; anything not described here is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The one network this policy signs for; batches (and requests) for another are refused.
    pub network: Network,
    /// Global freeze: when set, every request is refused.
    pub frozen: bool,
    /// Declared assets (TRX first, then tokens in file order).
    pub assets: Vec<AssetInfo>,
    /// Signing keys in file order.
    pub keys: Vec<KeyPolicy>,
    pub(crate) key_index: HashMap<Address, usize>,
    /// The keys' and token contracts' addresses in Base58Check, encoded once when the policy
    /// loads (an approval statement names both on every check).
    pub(crate) address_text: HashMap<Address, String>,
    /// HD deposit accounts whose derived keys may sweep to their collection address, in
    /// file order.
    pub deposit_accounts: Vec<DepositAccount>,
    /// Who may ask, in file order (at least one).
    pub callers: Vec<CallerPolicy>,
    /// Who may approve, in file order.
    pub approvers: Vec<Approver>,
    /// Which transfers need approval, in file order.
    pub approval_rules: Vec<ApprovalRule>,
    /// `[policy_admins]`: once this policy is in force, the administrators (and threshold)
    /// who must sign the next one, replacing the signer config's set. `None`: the config's.
    pub admins: Option<crate::governance::AdminSet>,
    /// `not_before`: the policy is not put in force before this instant (ms since the epoch).
    pub not_before_ms: Option<i64>,
    /// `expires_at`: from this instant on it allows nothing.
    pub expires_at_ms: Option<i64>,
}

/// A Tron network. Addresses look alike on all of them, so only the policy can say which
/// one its keys, destinations and token contracts belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    Mainnet,
    Nile,
    Shasta,
}

impl Network {
    pub const ALL: [Network; 3] = [Network::Mainnet, Network::Nile, Network::Shasta];

    /// The name used in policy files and batch files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Network::Mainnet => "mainnet",
            Network::Nile => "nile",
            Network::Shasta => "shasta",
        }
    }

    /// The network named exactly `name` (lower case, as written in files).
    pub fn from_name(name: &str) -> Option<Network> {
        Network::ALL.into_iter().find(|n| n.as_str() == name)
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to name and scale an asset for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetInfo {
    pub asset: Asset,
    pub symbol: String,
    pub decimals: u8,
}

/// A rolling-window maximum: at most `max` base units within any `window_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub window_ms: u64,
    /// The duration as written in the file ("24h"), used in messages.
    pub label: String,
    pub max: U256,
}

/// The rules for one signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPolicy {
    pub address: Address,
    pub label: String,
    pub frozen: bool,
    /// Assets this key may send, with the key-wide windows for each (at least one window).
    pub assets: Vec<KeyAsset>,
    pub destinations: Vec<Destination>,
    pub(crate) destination_index: HashMap<Address, usize>,
    pub envelope: EnvelopeRules,
    /// `gas_for`: this key may also send TRX to any address of a deposit account (the
    /// request names the index; the policy derives the address), up to a per-tx cap.
    pub gas_for: Option<GasFor>,
}

/// A gas key's licence to fund deposit addresses with TRX for their sweeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GasFor {
    /// The `[[deposit_account]]` by name.
    pub account: String,
    /// In sun.
    pub per_tx_max: U256,
}

/// `[[deposit_account]]`: an HD account (named by its account xpub) whose deposit keys
/// `m/44'/195'/0'/0/i`, for i in the index range, may send only these assets, only to the
/// collection address. Nothing else about them is configurable: a deposit address holds
/// customer payments and exists to be swept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositAccount {
    pub name: String,
    pub xpub: AccountXpub,
    pub first_index: u32,
    pub last_index: u32,
    pub collection: Address,
    pub assets: Vec<Asset>,
    /// The `[global]` transaction rules, which deposit keys sign under.
    pub envelope: EnvelopeRules,
}

/// One asset a key may send and its key-wide velocity limits (shortest window first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAsset {
    pub asset: Asset,
    pub windows: Vec<Window>,
}

/// An allowlisted recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub address: Address,
    pub label: String,
    pub assets: Vec<DestinationAsset>,
}

/// What one destination may receive of one asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationAsset {
    pub asset: Asset,
    pub per_tx_max: U256,
    /// Shortest window first; may be empty (the key windows still apply).
    pub windows: Vec<Window>,
}

/// Limits on the transaction fields around the transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeRules {
    /// In sun.
    pub max_fee_limit: u64,
    /// How far past the signer's clock (plus skew) the expiration may be.
    pub max_expiration_ms: u64,
    pub clock_skew_ms: u64,
    pub memo_allowed: bool,
    /// Bytes; 0 when memos are not allowed.
    pub max_memo_len: usize,
}

impl Policy {
    /// Signing keys this policy knows, in file order.
    pub fn keys(&self) -> impl Iterator<Item = &Address> {
        self.keys.iter().map(|k| &k.address)
    }

    /// `address` in Base58Check: a key's or token contract's as encoded when the policy
    /// loaded, any other encoded now.
    pub fn address_text(&self, address: &Address) -> std::borrow::Cow<'_, str> {
        match self.address_text.get(address) {
            Some(text) => std::borrow::Cow::Borrowed(text),
            None => std::borrow::Cow::Owned(address.to_base58()),
        }
    }

    /// The rules for `key`, if the policy has a section for it.
    pub fn key(&self, key: &Address) -> Option<&KeyPolicy> {
        self.key_index.get(key).and_then(|&i| self.keys.get(i))
    }

    /// The longest window any limit uses: how much history the ledger must be able to count.
    pub fn max_window_ms(&self) -> u64 {
        self.keys
            .iter()
            .flat_map(|k| {
                let key_windows = k.assets.iter().flat_map(|a| a.windows.iter());
                let dest_windows = k
                    .destinations
                    .iter()
                    .flat_map(|d| d.assets.iter().flat_map(|a| a.windows.iter()));
                key_windows.chain(dest_windows)
            })
            .map(|w| w.window_ms)
            .max()
            .unwrap_or(0)
    }

    /// The caller `presented` is, if exactly one `[[caller]]` recognises it.
    pub fn recognise(&self, presented: &Presented<'_>) -> Recognised<'_> {
        recognise(&self.callers, presented)
    }

    /// The approvals a transfer of `amount` of `asset` by `key` to `to` needs.
    pub fn quorum(&self, key: &Address, asset: &Asset, to: &Address, amount: U256) -> Quorum {
        quorum(&self.approval_rules, key, asset, to, amount)
    }

    /// The approver whose key made a signature, by its `SHA256:` fingerprint.
    pub fn approver(&self, fingerprint: &str) -> Option<&Approver> {
        self.approvers.iter().find(|a| a.fingerprint == fingerprint)
    }

    /// The approver whose key is `key` (what a signature names): the same approver
    /// [`Policy::approver`] finds by the key's fingerprint, without hashing the key.
    pub fn approver_by_key(&self, key: &ssh_key::public::KeyData) -> Option<&Approver> {
        self.approvers.iter().find(|a| a.key.data() == key)
    }

    /// The deposit account named `name`.
    pub fn deposit_account(&self, name: &str) -> Option<&DepositAccount> {
        self.deposit_accounts.iter().find(|a| a.name == name)
    }

    /// Symbol and decimals for `asset`, if declared.
    pub fn asset_info(&self, asset: &Asset) -> Option<&AssetInfo> {
        self.assets.iter().find(|a| &a.asset == asset)
    }
}

impl KeyPolicy {
    pub fn destination(&self, to: &Address) -> Option<&Destination> {
        self.destination_index
            .get(to)
            .and_then(|&i| self.destinations.get(i))
    }

    pub fn asset(&self, asset: &Asset) -> Option<&KeyAsset> {
        self.assets.iter().find(|a| &a.asset == asset)
    }
}

impl Destination {
    pub fn asset(&self, asset: &Asset) -> Option<&DestinationAsset> {
        self.assets.iter().find(|a| &a.asset == asset)
    }
}
