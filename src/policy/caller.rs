//! Who may ask: the `[[caller]]` sections of a policy, and recognising the identity a
//! transport presents as exactly one of them.
//!
//! The transports only say what they saw (a client key and certificate names, a socket uid,
//! a batch exporter key); the policy says who that is and what it may do. Anything not
//! recognised as a listed caller gets nothing (default deny), and an identity two callers
//! would both claim is refused rather than guessed at.

use std::fmt;

use tron_proto::Address;

/// The RPCs a caller can be granted, by the names the policy file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rpc {
    Sign,
    Evaluate,
    ListKeys,
    GetPolicy,
    ReadPolicyText,
    /// Delivers a policy administrator's freeze statement (the statement's signature is
    /// what counts; the grant only says who may hand one in).
    Freeze,
}

impl Rpc {
    pub const ALL: [Rpc; 6] = [
        Rpc::Sign,
        Rpc::Evaluate,
        Rpc::ListKeys,
        Rpc::GetPolicy,
        Rpc::ReadPolicyText,
        Rpc::Freeze,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Rpc::Sign => "Sign",
            Rpc::Evaluate => "Evaluate",
            Rpc::ListKeys => "ListKeys",
            Rpc::GetPolicy => "GetPolicy",
            Rpc::ReadPolicyText => "ReadPolicyText",
            Rpc::Freeze => "Freeze",
        }
    }

    /// The RPC named exactly `name` (as written in policy files).
    pub fn from_name(name: &str) -> Option<Rpc> {
        Rpc::ALL.into_iter().find(|r| r.as_str() == name)
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }

    /// Whether the RPC names signing keys (and so needs a key grant besides the RPC grant).
    pub const fn uses_keys(self) -> bool {
        matches!(self, Rpc::Sign | Rpc::Evaluate)
    }
}

impl fmt::Display for Rpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of granted RPCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RpcSet(u8);

impl RpcSet {
    pub fn insert(&mut self, rpc: Rpc) -> bool {
        let new = self.0 & rpc.bit() == 0;
        self.0 |= rpc.bit();
        new
    }

    pub fn contains(self, rpc: Rpc) -> bool {
        self.0 & rpc.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The granted RPCs in [`Rpc::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Rpc> {
        Rpc::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

/// One way a caller is recognised. Each names something the transport has verified.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Recognition {
    /// SHA-256 of the client certificate's SubjectPublicKeyInfo (any trust mode).
    TlsPin([u8; 32]),
    /// The certificate subject, exactly as the signer prints it (`CN=payments,O=Example`);
    /// only for certificates verified against `[tls] client_ca`.
    TlsSubject(String),
    /// One subject alternative name: `dns:…`, `uri:…` (`uri:spiffe://…`) or `ip:…`; only
    /// for certificates verified against `[tls] client_ca`.
    TlsSan(String),
    /// The uid of a process on the Unix socket (`SO_PEERCRED`).
    UnixUid(u32),
    /// Any process reaching the plaintext loopback TCP listener (`insecure_plaintext`): the
    /// policy says in so many words that such a connection is this caller.
    InsecureLoopback,
    /// The Ed25519 key a batch file is signed with (its exporter).
    BatchKey([u8; 32]),
}

impl fmt::Display for Recognition {
    /// The form audit records and messages name it by (`tls_pin=ab12…`, `unix_uid=1000`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recognition::TlsPin(pin) => write!(f, "tls_pin={}", hex::encode(pin)),
            Recognition::TlsSubject(s) => write!(f, "tls_subject={s}"),
            Recognition::TlsSan(s) => write!(f, "tls_san={s}"),
            Recognition::UnixUid(uid) => write!(f, "unix_uid={uid}"),
            Recognition::InsecureLoopback => f.write_str("insecure_loopback"),
            Recognition::BatchKey(k) => write!(f, "batch_key={}", ed25519_fingerprint(k)),
        }
    }
}

/// The `SHA256:…` fingerprint `ssh-keygen -l` prints for an Ed25519 public key, so an
/// auditor can match an audit record to the key file.
pub fn ed25519_fingerprint(key: &[u8; 32]) -> String {
    let data = ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(*key));
    data.fingerprint(ssh_key::HashAlg::Sha256).to_string()
}

/// One `[[caller]]`: who it is, how it is recognised, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerPolicy {
    pub name: String,
    /// At least one; each is unique across the policy's callers.
    pub recognised_by: Vec<Recognition>,
    pub rpcs: RpcSet,
    /// The signing keys it may name in Sign and Evaluate, and the ones ListKeys shows it.
    pub keys: KeyGrant,
    /// `deposit_accounts = [...]`: the `[[deposit_account]]`s whose derived keys it may
    /// name (sweeps). Not covered by `all_keys`: a sweep key is granted by name.
    pub deposit_accounts: Vec<String>,
}

/// Which signing keys a caller may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyGrant {
    /// `all_keys = true`: every `[[key]]` of the policy, present and future.
    All,
    /// `keys = [...]`: these, each a `[[key]]` of the policy.
    Listed(Vec<Address>),
}

impl KeyGrant {
    pub fn contains(&self, key: &Address) -> bool {
        match self {
            KeyGrant::All => true,
            KeyGrant::Listed(keys) => keys.contains(key),
        }
    }
}

impl CallerPolicy {
    pub fn may_call(&self, rpc: Rpc) -> bool {
        self.rpcs.contains(rpc)
    }

    pub fn may_use(&self, key: &Address) -> bool {
        self.keys.contains(key)
    }

    /// Whether it may sign with the deposit keys of the account named `account`.
    pub fn may_sweep(&self, account: &str) -> bool {
        self.deposit_accounts.iter().any(|a| a == account)
    }
}

/// What a transport verified about the party on the other end.
#[derive(Debug, Clone, Copy)]
pub enum Presented<'a> {
    Tls {
        spki_sha256: &'a [u8; 32],
        subject: &'a str,
        sans: &'a [String],
        /// Whether the certificate chained to `[tls] client_ca` (names in it are then
        /// vouched for by that CA); a pinned certificate's names are its holder's say-so.
        ca_verified: bool,
    },
    Unix {
        uid: u32,
    },
    LoopbackPlaintext,
    BatchExporter {
        ed25519: &'a [u8; 32],
    },
    /// The signer itself (a reload on SIGHUP): never a listed caller, never granted an RPC.
    Internal,
}

impl Presented<'_> {
    /// Whether `r` names this identity.
    fn matches(&self, r: &Recognition) -> bool {
        match (self, r) {
            (Presented::Tls { spki_sha256, .. }, Recognition::TlsPin(pin)) => *spki_sha256 == pin,
            (
                Presented::Tls {
                    subject,
                    ca_verified: true,
                    ..
                },
                Recognition::TlsSubject(s),
            ) => subject == s,
            (
                Presented::Tls {
                    sans,
                    ca_verified: true,
                    ..
                },
                Recognition::TlsSan(s),
            ) => sans.iter().any(|n| n == s),
            (Presented::Unix { uid }, Recognition::UnixUid(u)) => uid == u,
            (Presented::LoopbackPlaintext, Recognition::InsecureLoopback) => true,
            (Presented::BatchExporter { ed25519 }, Recognition::BatchKey(k)) => *ed25519 == k,
            _ => false,
        }
    }
}

/// What the policy makes of a presented identity.
#[derive(Debug, Clone, Copy)]
pub enum Recognised<'p> {
    /// Exactly one caller claims it, through `by` (its first matching recognition).
    Caller {
        caller: &'p CallerPolicy,
        by: &'p Recognition,
    },
    /// No caller claims it.
    Unknown,
    /// Two callers (at least) claim it: `first` and `second` in file order.
    Ambiguous {
        first: &'p CallerPolicy,
        second: &'p CallerPolicy,
    },
}

/// Recognises `presented` among `callers`.
pub fn recognise<'p>(callers: &'p [CallerPolicy], presented: &Presented<'_>) -> Recognised<'p> {
    let mut found: Option<(&CallerPolicy, &Recognition)> = None;
    for c in callers {
        let Some(by) = c.recognised_by.iter().find(|r| presented.matches(r)) else {
            continue;
        };
        match found {
            None => found = Some((c, by)),
            Some((first, _)) => {
                return Recognised::Ambiguous { first, second: c };
            }
        }
    }
    match found {
        Some((caller, by)) => Recognised::Caller { caller, by },
        None => Recognised::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(name: &str, by: Vec<Recognition>) -> CallerPolicy {
        CallerPolicy {
            name: name.into(),
            recognised_by: by,
            rpcs: RpcSet::default(),
            keys: KeyGrant::Listed(Vec::new()),
            deposit_accounts: Vec::new(),
        }
    }

    #[test]
    fn names_in_a_pinned_certificate_recognise_no_one() {
        let callers = [caller(
            "payments",
            vec![
                Recognition::TlsSubject("CN=payments".into()),
                Recognition::TlsSan("uri:spiffe://example.org/payments".into()),
            ],
        )];
        let sans = ["uri:spiffe://example.org/payments".to_owned()];
        let mut presented = Presented::Tls {
            spki_sha256: &[7; 32],
            subject: "CN=payments",
            sans: &sans,
            ca_verified: false,
        };
        assert!(matches!(
            recognise(&callers, &presented),
            Recognised::Unknown
        ));
        if let Presented::Tls { ca_verified, .. } = &mut presented {
            *ca_verified = true;
        }
        match recognise(&callers, &presented) {
            Recognised::Caller { caller, by } => {
                assert_eq!(caller.name, "payments");
                assert_eq!(by.to_string(), "tls_subject=CN=payments");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_identity_two_callers_claim_is_ambiguous() {
        let callers = [
            caller("a", vec![Recognition::TlsPin([1; 32])]),
            caller("b", vec![Recognition::TlsSubject("CN=x".into())]),
        ];
        let presented = Presented::Tls {
            spki_sha256: &[1; 32],
            subject: "CN=x",
            sans: &[],
            ca_verified: true,
        };
        match recognise(&callers, &presented) {
            Recognised::Ambiguous { first, second } => {
                assert_eq!((first.name.as_str(), second.name.as_str()), ("a", "b"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn transports_recognise_only_their_own_kind() {
        let callers = [caller(
            "ops",
            vec![Recognition::UnixUid(0), Recognition::BatchKey([2; 32])],
        )];
        assert!(matches!(
            recognise(&callers, &Presented::Unix { uid: 0 }),
            Recognised::Caller { .. }
        ));
        assert!(matches!(
            recognise(&callers, &Presented::Unix { uid: 1 }),
            Recognised::Unknown
        ));
        assert!(matches!(
            recognise(&callers, &Presented::LoopbackPlaintext),
            Recognised::Unknown
        ));
        assert!(matches!(
            recognise(&callers, &Presented::Internal),
            Recognised::Unknown
        ));
        assert!(matches!(
            recognise(&callers, &Presented::BatchExporter { ed25519: &[2; 32] }),
            Recognised::Caller { .. }
        ));
    }

    #[test]
    fn rpc_sets_hold_what_was_granted() {
        let mut set = RpcSet::default();
        assert!(set.is_empty());
        assert!(set.insert(Rpc::Evaluate));
        assert!(!set.insert(Rpc::Evaluate));
        assert!(set.contains(Rpc::Evaluate) && !set.contains(Rpc::Sign));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![Rpc::Evaluate]);
        for r in Rpc::ALL {
            assert_eq!(Rpc::from_name(r.as_str()), Some(r));
        }
        assert_eq!(Rpc::from_name("sign"), None);
    }
}
