//! Every reason code the signer gives, in one enum.
//!
//! A code is what monitoring, clients and tests match on: it names why a request was refused
//! (or, for audit records, what happened) and never changes once released. Messages are for
//! people and may change. [`ReasonCode::ALL`] is the exhaustive list; the docs are tested
//! against it.

use std::fmt;
use std::str::FromStr;

/// Which part of the decision path a code comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// What happened, for audit records of requests that were not refused.
    Outcome,
    /// The request around the transaction bytes (key address, payout id, idempotency).
    Request,
    /// The transaction bytes themselves (see `decode`).
    Decode,
    /// Who is asking.
    Caller,
    /// The policy in force said no.
    Policy,
    /// The policy in force, its archive and reloads.
    PolicyAdmin,
    /// The durable ledger.
    Ledger,
    /// Approvals of a payout (M-of-N sign-off).
    Approval,
    /// The key backend (soft keystore or PKCS#11 token).
    KeyBackend,
}

macro_rules! reason_codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $cat:ident; )*) => {
        /// A stable, machine-readable reason code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum ReasonCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ReasonCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ReasonCode] = &[ $( ReasonCode::$variant, )* ];

            /// The code as it appears on the wire, in audit records and in docs.
            pub const fn as_str(self) -> &'static str {
                match self { $( ReasonCode::$variant => $code, )* }
            }

            /// The part of the decision path the code comes from.
            pub const fn category(self) -> Category {
                match self { $( ReasonCode::$variant => Category::$cat, )* }
            }
        }
    };
}

reason_codes! {
    // --- outcomes (audit records of requests that were not refused) ---
    /// Signed and released.
    Signed = "signed", Outcome;
    /// The same txid asked again: the stored signature returned, not counted again.
    Replayed = "replayed", Outcome;
    /// Evaluate: Sign would sign this.
    WouldSign = "would_sign", Outcome;

    // --- the request around the bytes ---
    /// `key` is not a Tron address.
    BadKeyAddress = "bad_key_address", Request;
    /// `payout_id` is empty, too long or not printable ASCII.
    BadPayoutId = "bad_payout_id", Request;
    /// No key with this address is loaded in this signer.
    KeyNotLoaded = "key_not_loaded", Request;
    /// The policy's deposit account has no HD seed in this signer's keystore.
    DepositAccountNotLoaded = "deposit_account_not_loaded", Request;
    /// The txid was signed before for another payout id or key.
    TxidReused = "txid_reused", Request;
    /// Another request is signing this txid right now; retry.
    TxidInFlight = "txid_in_flight", Request;
    /// The payout id has another transaction that can still land.
    PayoutInFlight = "payout_in_flight", Request;
    /// A batch file (or request) for another network than the policy's.
    NetworkMismatch = "network_mismatch", Request;
    /// The caller has caused more audit bytes this second than its budget allows; retry.
    AuditBudgetExceeded = "audit_budget_exceeded", Request;
    /// The caller has caused more records that sign nothing (Evaluate answers, refusals,
    /// replays) than its rate allows; retry later.
    UnsignedRateExceeded = "unsigned_rate_exceeded", Request;

    // --- decode: the raw_data bytes (`decode::DecodeError`) ---
    InputTooLarge = "input_too_large", Decode;
    Truncated = "truncated", Decode;
    VarintOverflow = "varint_overflow", Decode;
    NonMinimalVarint = "non_minimal_varint", Decode;
    InvalidTag = "invalid_tag", Decode;
    TrailingBytes = "trailing_bytes", Decode;
    UnknownField = "unknown_field", Decode;
    WrongWireType = "wrong_wire_type", Decode;
    DuplicateField = "duplicate_field", Decode;
    FieldOrder = "field_order", Decode;
    DefaultValueEncoded = "default_value_encoded", Decode;
    Int32OutOfRange = "int32_out_of_range", Decode;
    InvalidUtf8 = "invalid_utf8", Decode;
    NonCanonical = "non_canonical", Decode;
    NoContract = "no_contract", Decode;
    MultipleContracts = "multiple_contracts", Decode;
    UnsupportedContractType = "unsupported_contract_type", Decode;
    TypeUrlMismatch = "type_url_mismatch", Decode;
    AuthsPresent = "auths_present", Decode;
    ScriptsPresent = "scripts_present", Decode;
    RefBlockNumSet = "ref_block_num_set", Decode;
    ProviderPresent = "provider_present", Decode;
    ContractNamePresent = "contract_name_present", Decode;
    PermissionIdUnsupported = "permission_id_unsupported", Decode;
    RefBlockBytesLength = "ref_block_bytes_length", Decode;
    RefBlockHashLength = "ref_block_hash_length", Decode;
    ExpirationMissing = "expiration_missing", Decode;
    NegativeExpiration = "negative_expiration", Decode;
    NegativeTimestamp = "negative_timestamp", Decode;
    NegativeFeeLimit = "negative_fee_limit", Decode;
    BadAddress = "bad_address", Decode;
    AmountNotPositive = "amount_not_positive", Decode;
    Trc20DataLength = "trc20_data_length", Decode;
    Trc20Selector = "trc20_selector", Decode;
    Trc20AddressPadding = "trc20_address_padding", Decode;
    Trc20ZeroAmount = "trc20_zero_amount", Decode;
    CallValueNonzero = "call_value_nonzero", Decode;
    CallTokenValueNonzero = "call_token_value_nonzero", Decode;
    TokenIdNonzero = "token_id_nonzero", Decode;

    // --- policy: the policy in force refused (`policy::DenyCode`) ---
    Frozen = "frozen", Policy;
    UnknownKey = "unknown_key", Policy;
    OwnerMismatch = "owner_mismatch", Policy;
    AssetNotAllowed = "asset_not_allowed", Policy;
    DestinationNotAllowed = "destination_not_allowed", Policy;
    DestinationAssetNotAllowed = "destination_asset_not_allowed", Policy;
    ZeroAmount = "zero_amount", Policy;
    OverPerTxMax = "over_per_tx_max", Policy;
    FeeLimitTooHigh = "fee_limit_too_high", Policy;
    ExpirationTooFar = "expiration_too_far", Policy;
    Expired = "expired", Policy;
    TimestampInFuture = "timestamp_in_future", Policy;
    MemoNotAllowed = "memo_not_allowed", Policy;
    MemoTooLong = "memo_too_long", Policy;
    OverDestinationWindow = "over_destination_window", Policy;
    OverKeyWindow = "over_key_window", Policy;
    /// A deposit key's index is outside every deposit account's range.
    DepositIndexOutOfRange = "deposit_index_out_of_range", Policy;
    /// The key is not the address any deposit account derives at the request's index.
    DepositAddressMismatch = "deposit_address_mismatch", Policy;
    /// A gas key's transfer goes elsewhere than the deposit address at the request's index.
    GasDestinationMismatch = "gas_destination_mismatch", Policy;
    /// The request names a deposit index for a key that is not a gas key.
    DepositIndexUnexpected = "deposit_index_unexpected", Policy;

    // --- the policy in force: reloads and its archive ---
    /// A reload put a new policy in force.
    PolicyReloaded = "policy_reloaded", PolicyAdmin;
    /// A reload was refused; the old policy stays in force.
    PolicyInvalid = "policy_invalid", PolicyAdmin;
    /// A policy was refused (at start-up or reload): the config names policy administrators
    /// and none of them signed its exact bytes.
    PolicyUnsigned = "policy_unsigned", PolicyAdmin;
    /// A policy was refused: fewer of the policy administrators signed it than the threshold.
    PolicyQuorumNotMet = "policy_quorum_not_met", PolicyAdmin;
    /// A policy was refused: its revision is not above the one put in force before (or it
    /// states none where one is needed), however it is signed.
    PolicyRollback = "policy_rollback", PolicyAdmin;
    /// A policy was refused at start-up or reload: its `not_before` is still ahead.
    PolicyNotYetValid = "policy_not_yet_valid", PolicyAdmin;
    /// The policy's `expires_at` has passed: at start-up or reload it is refused, and while
    /// it is in force every Sign and Evaluate is refused until another is put in force.
    PolicyExpired = "policy_expired", PolicyAdmin;
    /// A policy names `[policy_admins]` while the signer config has none (nothing would check
    /// their signatures).
    PolicyAdminsNotConfigured = "policy_admins_not_configured", PolicyAdmin;
    /// At start-up the policy recorded in force last is not in the archive, so the
    /// administrators who must sign its successor are unknown.
    PolicyAdminsUnknown = "policy_admins_unknown", PolicyAdmin;
    /// Audit only: at start-up, a policy other than the one recorded last was put in force.
    PolicyInForce = "policy_in_force", PolicyAdmin;
    /// Audit only: a policy administrator's freeze statement was taken; what it covers is
    /// refused `frozen` until a new quorum-signed policy is in force.
    FreezeApplied = "freeze_applied", PolicyAdmin;
    /// A freeze statement is not one (format, size) or its signature does not verify under
    /// `tron-signer-freeze`.
    FreezeInvalid = "freeze_invalid", PolicyAdmin;
    /// A freeze statement is signed by a key no policy administrator has.
    FreezeNotAdmin = "freeze_not_admin", PolicyAdmin;
    /// A freeze statement names another policy than the one in force (a new policy lifted
    /// the freeze it was for, or it was written for another signer).
    FreezeStale = "freeze_stale", PolicyAdmin;
    /// The config names no policy administrators, so nobody can sign a freeze.
    FreezeUnavailable = "freeze_unavailable", PolicyAdmin;
    /// A policy hash in a request is not 64 hex digits.
    PolicyHashInvalid = "policy_hash_invalid", PolicyAdmin;
    /// No policy with this hash was ever in force here.
    PolicyNotArchived = "policy_not_archived", PolicyAdmin;
    /// The archived text is missing, unreadable or does not match its hash.
    PolicyArchive = "policy_archive", PolicyAdmin;
    /// Too many policy text reads at once; retry.
    PolicyReadsBusy = "policy_reads_busy", PolicyAdmin;

    // --- callers and their transport ---
    /// SIGHUP re-read the TLS certificate, key and client trust and put them in force.
    TlsReloaded = "tls_reloaded", Caller;
    /// SIGHUP found TLS settings that do not load; the ones in force stay.
    TlsReloadRefused = "tls_reload_refused", Caller;
    /// No `[[caller]]` of the policy recognises this connection, socket peer or batch
    /// exporter (default deny).
    CallerUnknown = "caller_unknown", Caller;
    /// Two `[[caller]]`s recognise this identity (a pin of one, a name of another): refused
    /// rather than guessed.
    CallerAmbiguous = "caller_ambiguous", Caller;
    /// The caller has no grant for this RPC.
    CallerNotAllowed = "caller_not_allowed", Caller;
    /// The caller has no grant for the key it names.
    CallerKeyNotAllowed = "caller_key_not_allowed", Caller;
    /// A batch file without its exporter's signature: refused whole, nothing signed.
    BatchUnsigned = "batch_unsigned", Caller;
    /// A batch file whose exporter signature is not an Ed25519 SSH signature over its
    /// content under our namespace: refused whole, nothing signed.
    BatchSignatureInvalid = "batch_signature_invalid", Caller;

    // --- approvals ---
    /// The transfer is allowed only with approvals the request does not carry; the message
    /// names the groups and counts needed and gives the statement each approver signs.
    ApprovalRequired = "approval_required", Approval;
    /// An approval is not an SSH signature under `tron-signer-approval`, does not verify over
    /// this request's statement, or is over the size or count caps.
    ApprovalInvalid = "approval_invalid", Approval;
    /// The statement sent with an approval is not this request's; the message names the
    /// first line that differs.
    ApprovalMismatch = "approval_mismatch", Approval;
    /// An approval is signed by a key no `[[approver]]` has.
    ApproverUnknown = "approver_unknown", Approval;
    /// An approval is by an approver in none of the groups this transfer needs.
    ApproverNotInGroup = "approver_not_in_group", Approval;
    /// Two approvals by the same approver: each counts once.
    ApprovalDuplicate = "approval_duplicate", Approval;
    /// An approval by the approver who is the caller that initiated the request.
    ApprovalByInitiator = "approval_by_initiator", Approval;
    /// The transaction's expiration has passed: its approvals are void.
    ApprovalExpired = "approval_expired", Approval;
    /// An approver of a required group signed the reject statement: the payout is cancelled.
    ApprovalRejected = "approval_rejected", Approval;

    // --- ledger ---
    /// The ledger could not be read or written; nothing was signed.
    LedgerUnavailable = "ledger_unavailable", Ledger;
    /// The ledger writer's queue stayed full (the disk is not keeping up); nothing was
    /// signed; retry.
    LedgerBusy = "ledger_busy", Ledger;
    /// The signer's clock is behind its latest signature by more than the clock skew, or
    /// ahead of it by more than `[clock] max_advance`; nothing is signed until it is right.
    ClockJump = "clock_jump", Ledger;
    /// With a shared ledger: another signer put a different policy in force; this one
    /// signs nothing until it is reloaded with that policy.
    PolicyNotCurrent = "policy_not_current", Ledger;

    // --- key backend ---
    /// The soft backend has no key for this address.
    SoftKeyMissing = "soft_key_missing", KeyBackend;
    /// The soft backend failed to sign.
    SoftSignFailed = "soft_sign_failed", KeyBackend;
    Pkcs11ModuleLoad = "pkcs11_module_load", KeyBackend;
    Pkcs11ModuleInit = "pkcs11_module_init", KeyBackend;
    Pkcs11TokenNotFound = "pkcs11_token_not_found", KeyBackend;
    Pkcs11TokenAmbiguous = "pkcs11_token_ambiguous", KeyBackend;
    Pkcs11PinIncorrect = "pkcs11_pin_incorrect", KeyBackend;
    Pkcs11PinLocked = "pkcs11_pin_locked", KeyBackend;
    Pkcs11PinRejected = "pkcs11_pin_rejected", KeyBackend;
    Pkcs11KeyNotFound = "pkcs11_key_not_found", KeyBackend;
    Pkcs11KeyAmbiguous = "pkcs11_key_ambiguous", KeyBackend;
    Pkcs11PublicKeyMissing = "pkcs11_public_key_missing", KeyBackend;
    Pkcs11NotSecp256k1 = "pkcs11_not_secp256k1", KeyBackend;
    Pkcs11EcPointFormat = "pkcs11_ec_point_format", KeyBackend;
    Pkcs11EcPointInvalid = "pkcs11_ec_point_invalid", KeyBackend;
    Pkcs11KeyChanged = "pkcs11_key_changed", KeyBackend;
    Pkcs11KeyPairMismatch = "pkcs11_key_pair_mismatch", KeyBackend;
    Pkcs11SignatureInvalid = "pkcs11_signature_invalid", KeyBackend;
    Pkcs11LabelExists = "pkcs11_label_exists", KeyBackend;
    Pkcs11BadSelector = "pkcs11_bad_selector", KeyBackend;
    Pkcs11SessionLost = "pkcs11_session_lost", KeyBackend;
    Pkcs11DeviceUnavailable = "pkcs11_device_unavailable", KeyBackend;
    Pkcs11Busy = "pkcs11_busy", KeyBackend;
    Pkcs11PoolTimeout = "pkcs11_pool_timeout", KeyBackend;
    Pkcs11Refused = "pkcs11_refused", KeyBackend;
    Pkcs11TaskFailed = "pkcs11_task_failed", KeyBackend;
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of [`ReasonCode::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reason code {0:?}")]
pub struct UnknownReasonCode(pub String);

impl FromStr for ReasonCode {
    type Err = UnknownReasonCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReasonCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownReasonCode(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_distinct_snake_case_and_round_trip() {
        let mut seen = HashSet::new();
        for &c in ReasonCode::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{s} is not snake_case"
            );
            assert_eq!(s.parse::<ReasonCode>(), Ok(c));
        }
        assert_eq!(
            "no_such_code".parse::<ReasonCode>(),
            Err(UnknownReasonCode("no_such_code".into()))
        );
    }
}
