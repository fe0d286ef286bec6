//! Finding objects on a token and reading their attributes: the lookups both key
//! generation and signing need, so neither borrows from the other.

use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use k256::ecdsa::VerifyingKey;
use tron_proto::Address;

use super::config::KeySelector;
use super::ec_point::{public_key, SECP256K1_EC_PARAMS};
use super::error::Pkcs11Error;

/// The objects matching `template`.
pub fn find(session: &Session, template: &[Attribute]) -> Result<Vec<ObjectHandle>, Pkcs11Error> {
    session
        .find_objects(template)
        .map_err(|e| Pkcs11Error::from_cryptoki("C_FindObjects", e))
}

/// Reads one byte-valued attribute; `None` when the object does not have it.
pub fn read_bytes(
    session: &Session,
    handle: ObjectHandle,
    which: AttributeType,
) -> Result<Option<Vec<u8>>, Pkcs11Error> {
    let attrs = session
        .get_attributes(handle, &[which])
        .map_err(|e| Pkcs11Error::from_cryptoki("C_GetAttributeValue", e))?;
    Ok(attrs.into_iter().find_map(|a| match a {
        Attribute::EcPoint(v) | Attribute::EcParams(v) | Attribute::Label(v) | Attribute::Id(v) => {
            Some(v)
        }
        _ => None,
    }))
}

/// Reads one boolean attribute; `None` when the object does not have it.
pub fn read_bool(
    session: &Session,
    handle: ObjectHandle,
    which: AttributeType,
) -> Result<Option<bool>, Pkcs11Error> {
    let attrs = session
        .get_attributes(handle, &[which])
        .map_err(|e| Pkcs11Error::from_cryptoki("C_GetAttributeValue", e))?;
    Ok(attrs.into_iter().find_map(|a| match a {
        Attribute::Sensitive(b)
        | Attribute::Extractable(b)
        | Attribute::AlwaysSensitive(b)
        | Attribute::NeverExtractable(b)
        | Attribute::Sign(b)
        | Attribute::Decrypt(b)
        | Attribute::Unwrap(b)
        | Attribute::Derive(b)
        | Attribute::Token(b)
        | Attribute::Private(b) => Some(b),
        _ => None,
    }))
}

/// One key pair found by a selector: the private half's handle, the label, and the public
/// half as a key and an address.
pub struct Found {
    pub private: ObjectHandle,
    pub label: String,
    pub address: Address,
    pub verifying_key: VerifyingKey,
}

/// Finds exactly one EC private key for `selector` and the public key with the same
/// CKA_ID (or, for a key without an id, the same label), and derives its address.
pub fn lookup(session: &Session, selector: &KeySelector) -> Result<Found, Pkcs11Error> {
    let name = selector.to_string();
    let by = match selector {
        KeySelector::Label(l) => Attribute::Label(l.as_bytes().to_vec()),
        KeySelector::Id(id) => Attribute::Id(id.clone()),
    };
    let privates = find(
        session,
        &[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            by.clone(),
        ],
    )?;
    let private = match privates.as_slice() {
        [one] => *one,
        [] => return Err(Pkcs11Error::KeyNotFound { selector: name }),
        many => {
            return Err(Pkcs11Error::KeyAmbiguous {
                selector: name,
                count: many.len(),
            })
        }
    };
    let id = read_bytes(session, private, AttributeType::Id)?.unwrap_or_default();
    let label = read_bytes(session, private, AttributeType::Label)?.unwrap_or_default();
    let public_by = if id.is_empty() { by } else { Attribute::Id(id) };
    let publics = find(
        session,
        &[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
            public_by,
        ],
    )?;
    let public = match publics.as_slice() {
        [one] => *one,
        [] => return Err(Pkcs11Error::PublicKeyMissing { selector: name }),
        many => {
            return Err(Pkcs11Error::KeyAmbiguous {
                selector: name,
                count: many.len(),
            })
        }
    };
    let params = read_bytes(session, public, AttributeType::EcParams)?;
    if params.as_deref() != Some(&SECP256K1_EC_PARAMS[..]) {
        return Err(Pkcs11Error::NotSecp256k1 { selector: name });
    }
    let point = read_bytes(session, public, AttributeType::EcPoint)?
        .ok_or(Pkcs11Error::PublicKeyMissing { selector: name })?;
    let (verifying_key, address) = public_key(&point)?;
    Ok(Found {
        private,
        label: String::from_utf8_lossy(&label).into_owned(),
        address,
        verifying_key,
    })
}
