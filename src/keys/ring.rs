//! The keys the service may sign with, whatever backend holds each one.

use std::collections::BTreeMap;
use std::sync::Arc;

use tron_proto::Address;

use super::backend::KeyBackend;

/// The keys the service may sign with, by address.
#[derive(Clone, Default)]
pub struct KeyRing {
    keys: BTreeMap<Address, Arc<dyn KeyBackend>>,
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
        f.debug_list().entries(self.keys.keys()).finish()
    }
}
