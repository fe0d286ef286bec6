//! Creating secp256k1 key pairs inside a token and listing the ones it holds.

use std::sync::Mutex;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use secrecy::SecretString;
use tron_proto::Address;

use super::context::{find_slot, open_logged_in, Pkcs11Module};
use super::ec_point::{public_key, SECP256K1_EC_PARAMS};
use super::error::Pkcs11Error;
use super::object::{find, read_bytes};

/// SoftHSM 2.6 can interleave a concurrent find and create badly; one generation at a
/// time per process is cheap insurance for every module.
static KEYGEN: Mutex<()> = Mutex::new(());

/// A freshly generated key: its address and the CKA_ID both halves carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedKey {
    pub address: Address,
    /// The address's 20-byte body, so `{ id = "..." }` selectors can be read off the address.
    pub id: Vec<u8>,
}

/// One secp256k1 public key on the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub label: String,
    pub id_hex: String,
    pub address: Address,
    /// Whether a private key with the same CKA_ID is present (so the key can sign).
    pub has_private_key: bool,
}

/// The private-key template: the key is made on the token, stays there, and can only sign.
pub fn private_key_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::SignRecover(false),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

/// The public-key template: readable without login so `keys list` needs no PIN.
pub fn public_key_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::EcParams(SECP256K1_EC_PARAMS.to_vec()),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

/// Generates a secp256k1 key pair on the token labelled `token_label` and returns its Tron
/// address. Refuses a label already in use, so selectors by label stay unambiguous.
pub fn generate_key(
    module: &Pkcs11Module,
    token_label: &str,
    pin: &SecretString,
    label: &str,
) -> Result<GeneratedKey, Pkcs11Error> {
    let _one_at_a_time = KEYGEN.lock().unwrap_or_else(|p| p.into_inner());
    let _gate = module.enter();
    let ctx = module.context();
    let slot = find_slot(ctx, token_label)?;
    let session = open_logged_in(ctx, slot, true, pin)?;
    let taken = find(&session, &[Attribute::Label(label.as_bytes().to_vec())])?;
    if !taken.is_empty() {
        return Err(Pkcs11Error::LabelExists {
            label: label.to_owned(),
        });
    }
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &public_key_template(label),
            &private_key_template(label),
        )
        .map_err(|e| Pkcs11Error::from_cryptoki("C_GenerateKeyPair", e))?;
    match finish_generated(&session, public, private) {
        Ok(key) => Ok(key),
        Err(e) => {
            // A pair without its id would be invisible to id selectors; do not leave it.
            let _ = session.destroy_object(private);
            let _ = session.destroy_object(public);
            Err(e)
        }
    }
}

fn finish_generated(
    session: &Session,
    public: ObjectHandle,
    private: ObjectHandle,
) -> Result<GeneratedKey, Pkcs11Error> {
    let point = read_bytes(session, public, AttributeType::EcPoint)?.ok_or(
        Pkcs11Error::PublicKeyMissing {
            selector: "new key".into(),
        },
    )?;
    let (_, address) = public_key(&point)?;
    let id = address.evm_bytes().to_vec();
    for handle in [public, private] {
        session
            .update_attributes(handle, &[Attribute::Id(id.clone())])
            .map_err(|e| Pkcs11Error::from_cryptoki("C_SetAttributeValue", e))?;
    }
    Ok(GeneratedKey { address, id })
}

/// Lists the token's secp256k1 public keys (other curves are skipped) with their addresses.
pub fn list_keys(
    module: &Pkcs11Module,
    token_label: &str,
    pin: &SecretString,
) -> Result<Vec<KeyInfo>, Pkcs11Error> {
    let _gate = module.enter();
    let ctx = module.context();
    let slot = find_slot(ctx, token_label)?;
    let session = open_logged_in(ctx, slot, false, pin)?;
    let publics = find(
        &session,
        &[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
        ],
    )?;
    let mut out = Vec::new();
    for handle in publics {
        let params = read_bytes(&session, handle, AttributeType::EcParams)?;
        if params.as_deref() != Some(&SECP256K1_EC_PARAMS[..]) {
            continue;
        }
        let Some(point) = read_bytes(&session, handle, AttributeType::EcPoint)? else {
            continue;
        };
        let (_, address) = public_key(&point)?;
        let label = read_bytes(&session, handle, AttributeType::Label)?.unwrap_or_default();
        let id = read_bytes(&session, handle, AttributeType::Id)?.unwrap_or_default();
        let has_private_key = !id.is_empty()
            && !find(
                &session,
                &[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::Id(id.clone()),
                ],
            )?
            .is_empty();
        out.push(KeyInfo {
            label: String::from_utf8_lossy(&label).into_owned(),
            id_hex: hex::encode(&id),
            address,
            has_private_key,
        });
    }
    out.sort_by(|a, b| a.label.cmp(&b.label).then(a.id_hex.cmp(&b.id_hex)));
    Ok(out)
}
