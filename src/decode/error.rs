//! Every reason the decoder refuses a `raw_data`, each with a stable code.

use tron_proto::AddressError;

/// Why a `raw_data` was refused. Each variant has a stable [`DecodeError::code`];
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
    pub fn code(&self) -> &'static str {
        use DecodeError::*;
        match self {
            TooLarge { .. } => "input_too_large",
            Truncated { .. } => "truncated",
            VarintOverflow { .. } => "varint_overflow",
            NonMinimalVarint { .. } => "non_minimal_varint",
            InvalidTag { .. } => "invalid_tag",
            TrailingBytes { .. } => "trailing_bytes",
            UnknownField { .. } => "unknown_field",
            WrongWireType { .. } => "wrong_wire_type",
            DuplicateField { .. } => "duplicate_field",
            FieldOrder { .. } => "field_order",
            DefaultValueEncoded { .. } => "default_value_encoded",
            Int32OutOfRange { .. } => "int32_out_of_range",
            InvalidUtf8 { .. } => "invalid_utf8",
            NonCanonical => "non_canonical",
            NoContract => "no_contract",
            MultipleContracts { .. } => "multiple_contracts",
            UnsupportedContractType { .. } => "unsupported_contract_type",
            TypeUrlMismatch { .. } => "type_url_mismatch",
            AuthsPresent => "auths_present",
            ScriptsPresent => "scripts_present",
            RefBlockNumSet => "ref_block_num_set",
            ProviderPresent => "provider_present",
            ContractNamePresent => "contract_name_present",
            PermissionId { .. } => "permission_id_unsupported",
            RefBlockBytesLength { .. } => "ref_block_bytes_length",
            RefBlockHashLength { .. } => "ref_block_hash_length",
            ExpirationMissing => "expiration_missing",
            NegativeExpiration { .. } => "negative_expiration",
            NegativeTimestamp { .. } => "negative_timestamp",
            NegativeFeeLimit { .. } => "negative_fee_limit",
            BadAddress { .. } => "bad_address",
            AmountNotPositive { .. } => "amount_not_positive",
            Trc20DataLength { .. } => "trc20_data_length",
            Trc20Selector { .. } => "trc20_selector",
            Trc20AddressPadding => "trc20_address_padding",
            Trc20ZeroAmount => "trc20_zero_amount",
            CallValueNonZero { .. } => "call_value_nonzero",
            CallTokenValueNonZero { .. } => "call_token_value_nonzero",
            TokenIdNonZero { .. } => "token_id_nonzero",
        }
    }
}
