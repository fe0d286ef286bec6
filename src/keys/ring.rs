//! The keys the service may sign with, whatever backend holds each one.

use std::collections::BTreeMap;
use std::sync::Arc;

use tron_proto::hd::AccountXpub;
use tron_proto::Address;

use super::backend::{DepositKeys, KeyBackend};

/// The keys the service may sign with, by address, and the HD deposit accounts it may
/// derive deposit keys from.
#[derive(Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<Address, Arc<dyn KeyBackend>>,
    deposit_accounts: Vec<Arc<dyn DepositKeys>>,
}

impl KeyRing {
    /// Adds a key; a second key with the same address is refused, so an address always
    /// names one key.
    pub fn insert(&mut self, key: Arc<dyn KeyBackend>) -> Result<(), Address> {
        let addr = key.address();
        if self.keys.contains_key(&addr) {
            return Err(addr);
        }
        self.keys.insert(addr, key);
        Ok(())
    }

    pub fn get(&self, address: &Address) -> Option<&Arc<dyn KeyBackend>> {
        self.keys.get(address)
    }

    /// Adds an HD account; a second one for the same account is refused (its label back).
    pub fn insert_deposit_account(&mut self, account: Arc<dyn DepositKeys>) -> Result<(), String> {
        if self
            .deposit_accounts
            .iter()
            .any(|a| a.xpub().same_account(account.xpub()))
        {
            return Err(account.label().to_owned());
        }
        self.deposit_accounts.push(account);
        Ok(())
    }

    /// The loaded HD account the policy names by `xpub`.
    pub fn deposit_account(&self, xpub: &AccountXpub) -> Option<&Arc<dyn DepositKeys>> {
        self.deposit_accounts
            .iter()
            .find(|a| a.xpub().same_account(xpub))
    }

    pub fn deposit_accounts(&self) -> impl Iterator<Item = &Arc<dyn DepositKeys>> {
        self.deposit_accounts.iter()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn KeyBackend>> {
        self.keys.values()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .field(
                "deposit_accounts",
                &self
                    .deposit_accounts
                    .iter()
                    .map(|a| a.label())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}
