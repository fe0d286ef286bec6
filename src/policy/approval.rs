//! Who must approve what: the `[[approver]]` and `[[approval]]` sections of a policy, and
//! the quorum a transfer needs.
//!
//! Approvals come on top of every other rule: a payout the policy refuses is refused however
//! many approve it. A rule names an asset and an amount it applies above, optionally a key
//! and a destination; a transfer needs, for each group, the largest count any matching rule
//! asks of that group (so tiers add up: over 10,000 two of "treasury", over 100,000 also one
//! of "risk").

use tron_proto::{Address, U256};

use crate::decode::Asset;

/// A person (or role) who can approve, by the SSH key they sign with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    pub name: String,
    /// The groups they count for.
    pub groups: Vec<String>,
    /// Their public key (`ssh-ed25519`, `ecdsa-sha2-nistp256`, or the FIDO2 `sk-` forms),
    /// prepared for checking their signatures.
    pub key: crate::sshsig::PreparedKey,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The `[[caller]]` that is the same party: an approval of its own request is void.
    pub caller: Option<String>,
}

/// One `[[approval]]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRule {
    /// Applies to transfers of this asset ...
    pub asset: Asset,
    /// ... of strictly more than this many base units ...
    pub above: U256,
    /// ... by this key only, if set ...
    pub key: Option<Address>,
    /// ... to this destination only, if set.
    pub destination: Option<Address>,
    /// How many approvers of each group it needs, in file order.
    pub require: Vec<(String, u32)>,
    /// Where it is in the file ("approval rule 2"), for messages.
    pub label: String,
}

impl ApprovalRule {
    fn applies(&self, key: &Address, asset: &Asset, to: &Address, amount: U256) -> bool {
        &self.asset == asset
            && amount > self.above
            && self.key.as_ref().is_none_or(|k| k == key)
            && self.destination.as_ref().is_none_or(|d| d == to)
    }
}

/// What a transfer needs: per group, how many approvers (empty: no approval needed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quorum {
    /// (group, count), groups in the order the rules first name them.
    pub groups: Vec<(String, u32)>,
    /// The rules that asked for it, for messages.
    pub rules: Vec<String>,
}

impl Quorum {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// The quorum `rules` ask of a transfer of `amount` of `asset` by `key` to `to`.
pub fn quorum(
    rules: &[ApprovalRule],
    key: &Address,
    asset: &Asset,
    to: &Address,
    amount: U256,
) -> Quorum {
    let mut q = Quorum::default();
    for r in rules.iter().filter(|r| r.applies(key, asset, to, amount)) {
        q.rules.push(r.label.clone());
        for (group, count) in &r.require {
            match q.groups.iter_mut().find(|(g, _)| g == group) {
                Some((_, c)) => *c = (*c).max(*count),
                None => q.groups.push((group.clone(), *count)),
            }
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::addr;

    fn rule(above: u64, require: &[(&str, u32)]) -> ApprovalRule {
        ApprovalRule {
            asset: Asset::Trx,
            above: U256::from(above),
            key: None,
            destination: None,
            require: require.iter().map(|(g, c)| ((*g).into(), *c)).collect(),
            label: format!("above {above}"),
        }
    }

    #[test]
    fn tiers_add_up_to_the_largest_count_per_group() {
        let rules = [
            rule(10, &[("treasury", 2)]),
            rule(100, &[("treasury", 2), ("risk", 1)]),
            rule(1000, &[("treasury", 3)]),
        ];
        let q = |amount: u64| quorum(&rules, &addr(1), &Asset::Trx, &addr(2), U256::from(amount));
        assert!(q(10).is_empty(), "at the threshold itself: not above it");
        assert_eq!(q(11).groups, vec![("treasury".to_owned(), 2)]);
        assert_eq!(
            q(101).groups,
            vec![("treasury".to_owned(), 2), ("risk".to_owned(), 1)]
        );
        assert_eq!(
            q(5000).groups,
            vec![("treasury".to_owned(), 3), ("risk".to_owned(), 1)]
        );
        assert_eq!(q(5000).rules.len(), 3);
    }

    #[test]
    fn a_rule_narrowed_to_a_key_destination_or_asset_applies_only_there() {
        let mut r = rule(0, &[("risk", 1)]);
        r.key = Some(addr(1));
        r.destination = Some(addr(2));
        let rules = [r];
        let one = U256::from(1u8);
        assert!(!quorum(&rules, &addr(1), &Asset::Trx, &addr(2), one).is_empty());
        assert!(quorum(&rules, &addr(3), &Asset::Trx, &addr(2), one).is_empty());
        assert!(quorum(&rules, &addr(1), &Asset::Trx, &addr(3), one).is_empty());
        assert!(quorum(&rules, &addr(1), &Asset::Token(addr(9)), &addr(2), one).is_empty());
    }
}
