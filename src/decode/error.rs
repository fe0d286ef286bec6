//! Every reason the decoder refuses a `raw_data`, each with a stable code.

use tron_proto::AddressError;

use crate::reason::ReasonCode;

/// Why a `raw_data` was refused. Each variant has a stable [`DecodeError::reason`];
/// messages are for people and may be reworded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    // --- size and wire format ---
    #[error("raw_data is {len} bytes, above the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("{message}: input ends inside {field}")]
    Truncated {
        message: &'static str,
        field: &'static str,
    },
    #[error("{message}: varint in {field} is longer than 10 bytes or overflows 64 bits")]
    VarintOverflow {
        message: &'static str,
        field: &'static str,
    },
    #[error("{message}: varint in {field} is not minimally encoded")]
    NonMinimalVarint {
        message: &'static str,
        field: &'static str,
    },
    #[error("{message}: invalid field tag at byte {offset}")]
    InvalidTag {
        message: &'static str,
        offset: usize,
    },
    #[error("{message}: {count} trailing zero byte(s) after the last field")]
    TrailingBytes { message: &'static str, count: usize },
    #[error("{message}: unknown field number {number}")]
    UnknownField { message: &'static str, number: u64 },
    #[error("{message}.{field}: wire type {found}, expected {expected}")]
    WrongWireType {
        message: &'static str,
        field: &'static str,
        expected: u8,
        found: u8,
    },
    #[error("{message}.{field} appears more than once")]
    DuplicateField {
        message: &'static str,
        field: &'static str,
    },
    #[error("{message}.{field} is out of canonical field order")]
    FieldOrder {
        message: &'static str,
        field: &'static str,
    },
    #[error("{message}.{field} is explicitly encoded with its default value")]
    DefaultValueEncoded {
        message: &'static str,
        field: &'static str,
    },
    #[error("{message}.{field} does not fit in a 32-bit integer")]
    Int32OutOfRange {
        message: &'static str,
        field: &'static str,
    },
    #[error("{message}.{field} is not valid UTF-8")]
    InvalidUtf8 {
        message: &'static str,
        field: &'static str,
    },
    #[error("raw_data does not re-encode to the identical bytes")]
    NonCanonical,

    // --- transaction structure ---
    #[error("transaction has no contract")]
    NoContract,
    #[error("transaction has {count} contracts; exactly one is supported")]
    MultipleContracts { count: u32 },
    #[error("contract type {type_code} ({name}) is not supported; only TransferContract (1) and TriggerSmartContract (31) are")]
    UnsupportedContractType { type_code: i32, name: &'static str },
    #[error("parameter type_url is {found:?}, expected {expected:?}")]
    TypeUrlMismatch { expected: String, found: String },
    #[error("raw.auths is set; authority lists are not supported")]
    AuthsPresent,
    #[error("raw.scripts is set; scripts are not supported")]
    ScriptsPresent,
    #[error("raw.ref_block_num is set; Tron transactions reference blocks by bytes and hash only")]
    RefBlockNumSet,
    #[error("contract.provider is set; it is not supported")]
    ProviderPresent,
    #[error("contract.ContractName is set; it is not supported")]
    ContractNamePresent,
    #[error("Permission_id {id} is not supported; only the owner permission (0) is")]
    PermissionId { id: i64 },
    #[error("ref_block_bytes is {len} bytes, expected 2")]
    RefBlockBytesLength { len: usize },
    #[error("ref_block_hash is {len} bytes, expected 8")]
    RefBlockHashLength { len: usize },
    #[error("expiration is missing")]
    ExpirationMissing,
    #[error("expiration {value} is negative")]
    NegativeExpiration { value: i64 },
    #[error("timestamp {value} is negative")]
    NegativeTimestamp { value: i64 },
    #[error("fee_limit {value} is negative")]
    NegativeFeeLimit { value: i64 },

    // --- contract fields ---
    #[error("{field} is not a valid Tron address: {source}")]
    BadAddress {
        field: &'static str,
        source: AddressError,
    },
    #[error("amount {amount} is not positive")]
    AmountNotPositive { amount: i64 },
    #[error("call data is {len} bytes; transfer(address,uint256) is exactly 68")]
    Trc20DataLength { len: usize },
    #[error("call selector {selector} ({name}) is not transfer(address,uint256)")]
    Trc20Selector {
        selector: String,
        name: &'static str,
    },
    #[error("non-zero bytes in the 12-byte padding of the recipient word")]
    Trc20AddressPadding,
    #[error("TRC-20 transfer amount is zero")]
    Trc20ZeroAmount,
    #[error("call_value {value} is not zero; a token transfer must not send TRX")]
    CallValueNonZero { value: i64 },
    #[error("call_token_value {value} is not zero")]
    CallTokenValueNonZero { value: i64 },
    #[error("token_id {value} is not zero")]
    TokenIdNonZero { value: i64 },
}

impl DecodeError {
    /// Stable, machine-readable reason code.
    pub fn reason(&self) -> ReasonCode {
        use DecodeError::*;
        match self {
            TooLarge { .. } => ReasonCode::InputTooLarge,
            Truncated { .. } => ReasonCode::Truncated,
            VarintOverflow { .. } => ReasonCode::VarintOverflow,
            NonMinimalVarint { .. } => ReasonCode::NonMinimalVarint,
            InvalidTag { .. } => ReasonCode::InvalidTag,
            TrailingBytes { .. } => ReasonCode::TrailingBytes,
            UnknownField { .. } => ReasonCode::UnknownField,
            WrongWireType { .. } => ReasonCode::WrongWireType,
            DuplicateField { .. } => ReasonCode::DuplicateField,
            FieldOrder { .. } => ReasonCode::FieldOrder,
            DefaultValueEncoded { .. } => ReasonCode::DefaultValueEncoded,
            Int32OutOfRange { .. } => ReasonCode::Int32OutOfRange,
            InvalidUtf8 { .. } => ReasonCode::InvalidUtf8,
            NonCanonical => ReasonCode::NonCanonical,
            NoContract => ReasonCode::NoContract,
            MultipleContracts { .. } => ReasonCode::MultipleContracts,
            UnsupportedContractType { .. } => ReasonCode::UnsupportedContractType,
            TypeUrlMismatch { .. } => ReasonCode::TypeUrlMismatch,
            AuthsPresent => ReasonCode::AuthsPresent,
            ScriptsPresent => ReasonCode::ScriptsPresent,
            RefBlockNumSet => ReasonCode::RefBlockNumSet,
            ProviderPresent => ReasonCode::ProviderPresent,
            ContractNamePresent => ReasonCode::ContractNamePresent,
            PermissionId { .. } => ReasonCode::PermissionIdUnsupported,
            RefBlockBytesLength { .. } => ReasonCode::RefBlockBytesLength,
            RefBlockHashLength { .. } => ReasonCode::RefBlockHashLength,
            ExpirationMissing => ReasonCode::ExpirationMissing,
            NegativeExpiration { .. } => ReasonCode::NegativeExpiration,
            NegativeTimestamp { .. } => ReasonCode::NegativeTimestamp,
            NegativeFeeLimit { .. } => ReasonCode::NegativeFeeLimit,
            BadAddress { .. } => ReasonCode::BadAddress,
            AmountNotPositive { .. } => ReasonCode::AmountNotPositive,
            Trc20DataLength { .. } => ReasonCode::Trc20DataLength,
            Trc20Selector { .. } => ReasonCode::Trc20Selector,
            Trc20AddressPadding => ReasonCode::Trc20AddressPadding,
            Trc20ZeroAmount => ReasonCode::Trc20ZeroAmount,
            CallValueNonZero { .. } => ReasonCode::CallValueNonzero,
            CallTokenValueNonZero { .. } => ReasonCode::CallTokenValueNonzero,
            TokenIdNonZero { .. } => ReasonCode::TokenIdNonzero,
        }
    }

    /// One value of every variant, for exhaustive tests: the decode tests check that their
    /// codes are distinct and are exactly the `Decode` codes of [`ReasonCode::ALL`], so a
    /// variant added with a new code fails there until it is listed here.
    pub fn examples() -> Vec<DecodeError> {
        use DecodeError::*;
        vec![
            TooLarge { len: 0, max: 0 },
            Truncated {
                message: "",
                field: "",
            },
            VarintOverflow {
                message: "",
                field: "",
            },
            NonMinimalVarint {
                message: "",
                field: "",
            },
            InvalidTag {
                message: "",
                offset: 0,
            },
            TrailingBytes {
                message: "",
                count: 0,
            },
            UnknownField {
                message: "",
                number: 0,
            },
            WrongWireType {
                message: "",
                field: "",
                expected: 0,
                found: 0,
            },
            DuplicateField {
                message: "",
                field: "",
            },
            FieldOrder {
                message: "",
                field: "",
            },
            DefaultValueEncoded {
                message: "",
                field: "",
            },
            Int32OutOfRange {
                message: "",
                field: "",
            },
            InvalidUtf8 {
                message: "",
                field: "",
            },
            NonCanonical,
            NoContract,
            MultipleContracts { count: 0 },
            UnsupportedContractType {
                type_code: 0,
                name: "",
            },
            TypeUrlMismatch {
                expected: String::new(),
                found: String::new(),
            },
            AuthsPresent,
            ScriptsPresent,
            RefBlockNumSet,
            ProviderPresent,
            ContractNamePresent,
            PermissionId { id: 0 },
            RefBlockBytesLength { len: 0 },
            RefBlockHashLength { len: 0 },
            ExpirationMissing,
            NegativeExpiration { value: 0 },
            NegativeTimestamp { value: 0 },
            NegativeFeeLimit { value: 0 },
            BadAddress {
                field: "",
                source: tron_proto::AddressError::Empty,
            },
            AmountNotPositive { amount: 0 },
            Trc20DataLength { len: 0 },
            Trc20Selector {
                selector: String::new(),
                name: "",
            },
            Trc20AddressPadding,
            Trc20ZeroAmount,
            CallValueNonZero { value: 0 },
            CallTokenValueNonZero { value: 0 },
            TokenIdNonZero { value: 0 },
        ]
    }

    /// The reason code as text (what `inspect` prints).
    pub fn code(&self) -> &'static str {
        self.reason().as_str()
    }
}
