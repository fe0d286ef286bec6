//! What changed between two policies, in the words an auditor reviews a change in: keys,
//! destinations, tokens, callers and approvers added or removed; every limit raised or lowered
//! with both values; envelope rules and grants changed. Things are matched by what they are
//! (a key by its address, a destination by its address, a window by its length, a caller or
//! approver by its name, an approval rule by its content), never by their place in the file,
//! so reordering is not a difference.

use std::collections::BTreeSet;

use serde::Serialize;
use tron_proto::U256;

use super::approval::ApprovalRule;
use super::caller::{CallerPolicy, KeyGrant};
use super::model::{Destination, EnvelopeRules, KeyPolicy, Policy, Window};
use super::{format_amount, format_duration};
use crate::decode::Asset;

/// The direction of one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Added,
    Removed,
    Raised,
    Lowered,
    Changed,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: Kind,
    /// What it is about: `key "hot 1" (T…)`, `destination "exchange" (T…) of key "hot 1" (T…)`.
    pub subject: String,
    /// Which property, for raised, lowered and changed (`USDT per transaction`).
    pub what: String,
    pub old: Option<String>,
    pub new: Option<String>,
    /// The whole change in one sentence.
    pub text: String,
}

/// Every difference from `old` to `new`, in a stable order (policy-wide settings, tokens,
/// keys with their destinations, callers, approvers, approval rules).
pub fn diff(old: &Policy, new: &Policy) -> Vec<Change> {
    let mut d = Diff {
        old,
        new,
        out: Vec::new(),
    };
    if old.network != new.network {
        d.changed(
            "the policy",
            "network",
            old.network.as_str(),
            new.network.as_str(),
        );
    }
    if old.frozen != new.frozen {
        d.changed(
            "the policy",
            "global freeze",
            on_off(old.frozen),
            on_off(new.frozen),
        );
    }
    d.tokens();
    d.deposit_accounts();
    d.keys();
    d.callers();
    d.approvers();
    d.approval_rules();
    d.admins();
    d.out
}

struct Diff<'a> {
    old: &'a Policy,
    new: &'a Policy,
    out: Vec<Change>,
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

impl Diff<'_> {
    fn push(
        &mut self,
        kind: Kind,
        subject: String,
        what: &str,
        old: Option<String>,
        new: Option<String>,
    ) {
        let text = match kind {
            Kind::Added => format!("added {subject}"),
            Kind::Removed => format!("removed {subject}"),
            Kind::Raised | Kind::Lowered => format!(
                "{} {} → {} {what} for {subject}",
                if kind == Kind::Raised {
                    "raised"
                } else {
                    "lowered"
                },
                old.as_deref().unwrap_or("?"),
                new.as_deref().unwrap_or("?")
            ),
            Kind::Changed => format!(
                "changed {what} of {subject}: {} → {}",
                old.as_deref().unwrap_or("none"),
                new.as_deref().unwrap_or("none")
            ),
        };
        self.out.push(Change {
            kind,
            subject,
            what: what.to_owned(),
            old,
            new,
            text,
        });
    }

    fn added(&mut self, subject: String) {
        self.push(Kind::Added, subject, "", None, None);
    }

    fn removed(&mut self, subject: String) {
        self.push(Kind::Removed, subject, "", None, None);
    }

    fn changed(&mut self, subject: &str, what: &str, old: &str, new: &str) {
        self.push(
            Kind::Changed,
            subject.to_owned(),
            what,
            Some(old.to_owned()),
            Some(new.to_owned()),
        );
    }

    /// Raised or lowered, if `old != new`; `show` renders a value.
    fn number<T: PartialOrd>(
        &mut self,
        subject: &str,
        what: &str,
        old: T,
        new: T,
        show: impl Fn(&T) -> String,
    ) {
        if old == new {
            return;
        }
        let kind = if new > old {
            Kind::Raised
        } else {
            Kind::Lowered
        };
        self.push(
            kind,
            subject.to_owned(),
            what,
            Some(show(&old)),
            Some(show(&new)),
        );
    }

    /// Symbol and decimals of `asset`, from the new policy if it declares it, else the old.
    fn unit(&self, asset: &Asset) -> (String, u8) {
        self.new
            .asset_info(asset)
            .or_else(|| self.old.asset_info(asset))
            .map_or_else(
                || (asset_name(asset), 0),
                |i| (i.symbol.clone(), i.decimals),
            )
    }

    fn amount(&self, asset: &Asset) -> impl Fn(&U256) -> String {
        let (_, decimals) = self.unit(asset);
        move |v: &U256| format_amount(*v, decimals)
    }

    fn tokens(&mut self) {
        for a in &self.old.assets {
            if self.new.asset_info(&a.asset).is_none() {
                self.removed(format!("token {} ({})", a.symbol, asset_name(&a.asset)));
            }
        }
        for a in &self.new.assets {
            let subject = format!("token {} ({})", a.symbol, asset_name(&a.asset));
            match self.old.asset_info(&a.asset) {
                None => self.added(subject),
                Some(o) => {
                    if o.symbol != a.symbol {
                        self.changed(&subject, "symbol", &o.symbol, &a.symbol);
                    }
                    if o.decimals != a.decimals {
                        self.changed(
                            &subject,
                            "decimals",
                            &o.decimals.to_string(),
                            &a.decimals.to_string(),
                        );
                    }
                }
            }
        }
    }

    fn keys(&mut self) {
        for k in &self.old.keys {
            if self.new.key(&k.address).is_none() {
                self.removed(key_name(k));
            }
        }
        for k in &self.new.keys {
            match self.old.key(&k.address) {
                None => self.added(key_name(k)),
                Some(o) => self.key(o, k),
            }
        }
    }

    fn key(&mut self, old: &KeyPolicy, new: &KeyPolicy) {
        let subject = key_name(new);
        if old.label != new.label {
            self.changed(&subject, "label", &old.label, &new.label);
        }
        if old.frozen != new.frozen {
            self.changed(&subject, "freeze", on_off(old.frozen), on_off(new.frozen));
        }
        for a in &old.assets {
            if !new.assets.iter().any(|n| n.asset == a.asset) {
                let (symbol, _) = self.unit(&a.asset);
                self.removed(format!("asset {symbol} from {subject}"));
            }
        }
        for a in &new.assets {
            let (symbol, _) = self.unit(&a.asset);
            match old.assets.iter().find(|o| o.asset == a.asset) {
                None => self.added(format!("asset {symbol} to {subject}")),
                Some(o) => self.windows(&subject, &a.asset, &o.windows, &a.windows),
            }
        }
        self.envelope(&subject, &old.envelope, &new.envelope);
        let gas = |g: &Option<crate::policy::model::GasFor>| match g {
            None => "none".to_owned(),
            Some(g) => format!(
                "{:?}, at most {} TRX per transaction",
                g.account,
                format_amount(g.per_tx_max, super::load::TRX_DECIMALS)
            ),
        };
        if old.gas_for != new.gas_for {
            self.changed(&subject, "gas_for", &gas(&old.gas_for), &gas(&new.gas_for));
        }
        for d in &old.destinations {
            if new.destination(&d.address).is_none() {
                self.removed(format!("{} of {subject}", destination_name(d)));
            }
        }
        for d in &new.destinations {
            match old.destination(&d.address) {
                None => self.added(format!("{} to {subject}", destination_name(d))),
                Some(o) => self.destination(&subject, o, d),
            }
        }
    }

    fn destination(&mut self, key: &str, old: &Destination, new: &Destination) {
        let subject = format!("{} of {key}", destination_name(new));
        if old.label != new.label {
            self.changed(&subject, "label", &old.label, &new.label);
        }
        for a in &old.assets {
            if !new.assets.iter().any(|n| n.asset == a.asset) {
                let (symbol, _) = self.unit(&a.asset);
                self.removed(format!("asset {symbol} from {subject}"));
            }
        }
        for a in &new.assets {
            let (symbol, _) = self.unit(&a.asset);
            match old.assets.iter().find(|o| o.asset == a.asset) {
                None => self.added(format!("asset {symbol} to {subject}")),
                Some(o) => {
                    let show = self.amount(&a.asset);
                    self.number(
                        &subject,
                        &format!("{symbol} per transaction"),
                        o.per_tx_max,
                        a.per_tx_max,
                        show,
                    );
                    self.windows(&subject, &a.asset, &o.windows, &a.windows);
                }
            }
        }
    }

    /// Windows matched by their length, named as the new file writes them.
    fn windows(&mut self, subject: &str, asset: &Asset, old: &[Window], new: &[Window]) {
        let (symbol, _) = self.unit(asset);
        for w in old {
            if !new.iter().any(|n| n.window_ms == w.window_ms) {
                let show = self.amount(asset);
                self.removed(format!(
                    "the {} {symbol} window (max {}) of {subject}",
                    w.label,
                    show(&w.max)
                ));
            }
        }
        for w in new {
            let show = self.amount(asset);
            match old.iter().find(|o| o.window_ms == w.window_ms) {
                None => self.added(format!(
                    "a {} {symbol} window (max {}) to {subject}",
                    w.label,
                    show(&w.max)
                )),
                Some(o) => self.number(
                    subject,
                    &format!("{symbol} in any {}", w.label),
                    o.max,
                    w.max,
                    show,
                ),
            }
        }
    }

    fn envelope(&mut self, subject: &str, old: &EnvelopeRules, new: &EnvelopeRules) {
        self.number(
            subject,
            "TRX max fee_limit",
            old.max_fee_limit,
            new.max_fee_limit,
            |v| format_amount(U256::from(*v), 6),
        );
        self.number(
            subject,
            "max expiration",
            old.max_expiration_ms,
            new.max_expiration_ms,
            |v| format_duration(*v),
        );
        self.number(
            subject,
            "clock skew",
            old.clock_skew_ms,
            new.clock_skew_ms,
            |v| format_duration(*v),
        );
        if old.memo_allowed != new.memo_allowed {
            let say = |b: bool| if b { "allowed" } else { "not allowed" };
            self.changed(
                subject,
                "memos",
                say(old.memo_allowed),
                say(new.memo_allowed),
            );
        }
        self.number(
            subject,
            "bytes max memo length",
            old.max_memo_len,
            new.max_memo_len,
            |v| v.to_string(),
        );
    }

    fn callers(&mut self) {
        for c in &self.old.callers {
            if !self.new.callers.iter().any(|n| n.name == c.name) {
                self.removed(format!("caller {:?}", c.name));
            }
        }
        for c in &self.new.callers {
            let subject = format!("caller {:?}", c.name);
            match self.old.callers.iter().find(|o| o.name == c.name) {
                None => self.added(subject),
                Some(o) => self.caller(&subject, o, c),
            }
        }
    }

    fn caller(&mut self, subject: &str, old: &CallerPolicy, new: &CallerPolicy) {
        let ids = |c: &CallerPolicy| -> BTreeSet<String> {
            c.recognised_by.iter().map(ToString::to_string).collect()
        };
        let (o, n) = (ids(old), ids(new));
        for gone in o.difference(&n) {
            self.removed(format!("identity {gone} from {subject}"));
        }
        for new_id in n.difference(&o) {
            self.added(format!("identity {new_id} to {subject}"));
        }
        let rpcs = |c: &CallerPolicy| {
            c.rpcs
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if old.rpcs != new.rpcs {
            self.changed(subject, "RPCs", &rpcs(old), &rpcs(new));
        }
        let keys = |g: &KeyGrant| match g {
            KeyGrant::All => "all keys".to_owned(),
            KeyGrant::Listed(list) => {
                let set: BTreeSet<String> = list.iter().map(ToString::to_string).collect();
                set.into_iter().collect::<Vec<_>>().join(", ")
            }
        };
        if keys(&old.keys) != keys(&new.keys) {
            self.changed(subject, "keys", &keys(&old.keys), &keys(&new.keys));
        }
        if old.deposit_accounts != new.deposit_accounts {
            let list = |c: &CallerPolicy| c.deposit_accounts.join(", ");
            self.changed(subject, "deposit accounts", &list(old), &list(new));
        }
    }

    /// `[[deposit_account]]`s by name: their key, index range, collection address and
    /// assets are what lets derived keys move funds, so each is reported.
    fn deposit_accounts(&mut self) {
        for a in &self.old.deposit_accounts {
            if self.new.deposit_account(&a.name).is_none() {
                self.removed(format!("deposit account {:?}", a.name));
            }
        }
        for a in &self.new.deposit_accounts {
            let subject = format!("deposit account {:?}", a.name);
            let Some(o) = self.old.deposit_account(&a.name) else {
                self.added(subject);
                continue;
            };
            if o.xpub != a.xpub {
                self.changed(&subject, "xpub", &o.xpub.to_text(), &a.xpub.to_text());
            }
            let range = |x: &crate::policy::model::DepositAccount| {
                format!("{}..={}", x.first_index, x.last_index)
            };
            if range(o) != range(a) {
                self.changed(&subject, "index range", &range(o), &range(a));
            }
            if o.collection != a.collection {
                self.changed(
                    &subject,
                    "collection address",
                    &o.collection.to_base58(),
                    &a.collection.to_base58(),
                );
            }
            let assets = |x: &crate::policy::model::DepositAccount| {
                x.assets
                    .iter()
                    .map(|asset| self.unit(asset).0)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if assets(o) != assets(a) {
                self.changed(&subject, "assets", &assets(o), &assets(a));
            }
            self.envelope(&subject, &o.envelope, &a.envelope);
        }
    }

    fn approvers(&mut self) {
        for a in &self.old.approvers {
            if !self.new.approvers.iter().any(|n| n.name == a.name) {
                self.removed(format!("approver {:?} ({})", a.name, a.fingerprint));
            }
        }
        for a in &self.new.approvers {
            let subject = format!("approver {:?}", a.name);
            let Some(o) = self.old.approvers.iter().find(|o| o.name == a.name) else {
                self.added(format!(
                    "{subject} ({}, groups {})",
                    a.fingerprint,
                    a.groups.join(", ")
                ));
                continue;
            };
            if o.fingerprint != a.fingerprint {
                self.changed(&subject, "key", &o.fingerprint, &a.fingerprint);
            }
            let groups = |g: &[String]| {
                g.iter()
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if groups(&o.groups) != groups(&a.groups) {
                self.changed(&subject, "groups", &groups(&o.groups), &groups(&a.groups));
            }
            if o.caller != a.caller {
                self.changed(
                    &subject,
                    "caller",
                    o.caller.as_deref().unwrap_or("none"),
                    a.caller.as_deref().unwrap_or("none"),
                );
            }
        }
    }

    /// `[policy_admins]`: each administrator by name, and the threshold.
    fn admins(&mut self) {
        let (old, new) = (self.old.admins.as_ref(), self.new.admins.as_ref());
        let none = crate::governance::AdminSet {
            admins: Vec::new(),
            threshold: 0,
        };
        let (o, n) = (old.unwrap_or(&none), new.unwrap_or(&none));
        for a in &o.admins {
            if !n.admins.iter().any(|x| x.name == a.name) {
                self.removed(format!(
                    "policy administrator {:?} ({})",
                    a.name, a.fingerprint
                ));
            }
        }
        for a in &n.admins {
            let subject = format!("policy administrator {:?}", a.name);
            match o.admins.iter().find(|x| x.name == a.name) {
                None => self.added(format!("{subject} ({})", a.fingerprint)),
                Some(x) if x.fingerprint != a.fingerprint => {
                    self.changed(&subject, "key", &x.fingerprint, &a.fingerprint)
                }
                Some(_) => {}
            }
        }
        let said = |set: Option<&crate::governance::AdminSet>| match set {
            None => "the signer config's".to_owned(),
            Some(s) => format!("{} of {}", s.threshold, s.admins.len()),
        };
        if said(old) != said(new) {
            self.changed("[policy_admins]", "threshold", &said(old), &said(new));
        }
    }

    /// Rules as a multiset of their meaning.
    fn approval_rules(&mut self) {
        let said = |p: &Policy| -> Vec<String> {
            p.approval_rules.iter().map(|r| rule_text(p, r)).collect()
        };
        let (mut old, new) = (said(self.old), said(self.new));
        let mut added = Vec::new();
        for r in new {
            match old.iter().position(|o| *o == r) {
                Some(i) => {
                    old.swap_remove(i);
                }
                None => added.push(r),
            }
        }
        for r in old {
            self.removed(format!("approval rule: {r}"));
        }
        for r in added {
            self.added(format!("approval rule: {r}"));
        }
    }
}

fn asset_name(asset: &Asset) -> String {
    match asset {
        Asset::Trx => "TRX".into(),
        Asset::Token(c) => format!("TRC-20 {c}"),
    }
}

fn key_name(k: &KeyPolicy) -> String {
    format!("key {:?} ({})", k.label, k.address)
}

fn destination_name(d: &Destination) -> String {
    format!("destination {:?} ({})", d.label, d.address)
}

/// A rule in words, independent of its place in the file.
fn rule_text(p: &Policy, r: &ApprovalRule) -> String {
    let (symbol, decimals) = p.asset_info(&r.asset).map_or_else(
        || (asset_name(&r.asset), 0),
        |i| (i.symbol.clone(), i.decimals),
    );
    let mut require: Vec<String> = r
        .require
        .iter()
        .map(|(g, n)| format!("{n} of {g:?}"))
        .collect();
    require.sort();
    let mut s = format!("{symbol} above {}", format_amount(r.above, decimals));
    if let Some(k) = &r.key {
        s.push_str(&format!(" by key {k}"));
    }
    if let Some(d) = &r.destination {
        s.push_str(&format!(" to {d}"));
    }
    format!("{s} needs {}", require.join(" and "))
}
