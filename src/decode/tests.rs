//! One test per refusal, each from hand-encoded bytes, plus the accepted shapes.

use super::*;

// --- a tiny hand encoder, able to write non-canonical shapes on purpose ---

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

fn tag(n: u64, wt: u64) -> Vec<u8> {
    varint(n << 3 | wt)
}

fn vfield(n: u64, v: u64) -> Vec<u8> {
    [tag(n, 0), varint(v)].concat()
}

fn bfield(n: u64, b: &[u8]) -> Vec<u8> {
    [tag(n, 2), varint(b.len() as u64), b.to_vec()].concat()
}

const OWNER: &str = "4194a15629b2b2bbd3a5453e6d6696b2875278633b";
const TO: &str = "41a614f803b6fd780986a42c78ec9c7f77e6ded13c";
const USDT: &str = "41a614f803b6fd780986a42c78ec9c7f77e6ded13c";

fn addr(h: &str) -> Vec<u8> {
    hex::decode(h).unwrap()
}

fn transfer_value(amount: u64) -> Vec<u8> {
    [
        bfield(1, &addr(OWNER)),
        bfield(2, &addr(TO)),
        vfield(3, amount),
    ]
    .concat()
}

fn call_data(amount: u64) -> Vec<u8> {
    let mut d = hex::decode("a9059cbb").unwrap();
    d.extend_from_slice(&[0u8; 12]);
    d.extend_from_slice(&addr(TO)[1..]);
    d.extend_from_slice(&[0u8; 24]);
    d.extend_from_slice(&amount.to_be_bytes());
    d
}

fn trigger_value(data: &[u8]) -> Vec<u8> {
    [
        bfield(1, &addr(OWNER)),
        bfield(2, &addr(USDT)),
        bfield(4, data),
    ]
    .concat()
}

fn any(type_url: &str, value: &[u8]) -> Vec<u8> {
    [bfield(1, type_url.as_bytes()), bfield(2, value)].concat()
}

fn contract(type_code: u64, param: &[u8]) -> Vec<u8> {
    [vfield(1, type_code), bfield(2, param)].concat()
}

fn trx_contract() -> Vec<u8> {
    contract(
        1,
        &any(
            "type.googleapis.com/protocol.TransferContract",
            &transfer_value(1_000_000),
        ),
    )
}

fn trc20_contract_with(data: &[u8]) -> Vec<u8> {
    contract(
        31,
        &any(
            "type.googleapis.com/protocol.TriggerSmartContract",
            &trigger_value(data),
        ),
    )
}

/// A raw with the given contract bytes and every envelope field set canonically.
fn raw_with(contract: &[u8]) -> Vec<u8> {
    [
        bfield(1, &[0x12, 0x34]),
        bfield(4, &[1, 2, 3, 4, 5, 6, 7, 8]),
        vfield(8, 1_790_000_000_000),
        bfield(10, b"memo"),
        bfield(11, contract),
        vfield(14, 1_789_999_940_000),
        vfield(18, 30_000_000),
    ]
    .concat()
}

fn trx() -> Vec<u8> {
    raw_with(&trx_contract())
}

fn trc20() -> Vec<u8> {
    raw_with(&trc20_contract_with(&call_data(5_000_000)))
}

fn code(raw: &[u8]) -> &'static str {
    match decode(raw) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

// --- accepted shapes ---

#[test]
fn accepts_trx_transfer() {
    let raw = trx();
    let d = decode(&raw).unwrap();
    assert_eq!(d.envelope.txid, tron_proto::txid(&raw));
    assert_eq!(d.envelope.ref_block_bytes, [0x12, 0x34]);
    assert_eq!(d.envelope.ref_block_hash, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(d.envelope.expiration, 1_790_000_000_000);
    assert_eq!(d.envelope.timestamp, 1_789_999_940_000);
    assert_eq!(d.envelope.fee_limit, 30_000_000);
    assert_eq!(d.envelope.memo, b"memo");
    assert_eq!(
        d.intent,
        Intent::Trx(TrxTransfer {
            owner: Address::from_hex(OWNER).unwrap(),
            to: Address::from_hex(TO).unwrap(),
            amount: 1_000_000,
        })
    );
    assert_eq!(encode(&d), raw);
}

#[test]
fn accepts_trc20_transfer() {
    let raw = trc20();
    let d = decode(&raw).unwrap();
    assert_eq!(
        d.intent,
        Intent::Trc20(Trc20Transfer {
            owner: Address::from_hex(OWNER).unwrap(),
            token: Address::from_hex(USDT).unwrap(),
            to: Address::from_hex(TO).unwrap(),
            amount: U256::new(5_000_000),
        })
    );
    assert_eq!(encode(&d), raw);
}

#[test]
fn accepts_minimal_envelope_and_full_width_amount() {
    let mut data = call_data(0);
    data[36..68].fill(0xff);
    let raw = [
        bfield(1, &[0, 1]),
        bfield(4, &[0; 8]),
        vfield(8, 1),
        bfield(11, &trc20_contract_with(&data)),
    ]
    .concat();
    let d = decode(&raw).unwrap();
    let Intent::Trc20(t) = d.intent else {
        panic!("expected trc20")
    };
    assert_eq!(t.amount, U256::MAX);
    assert_eq!(d.envelope.fee_limit, 0);
    assert_eq!(d.envelope.timestamp, 0);
    assert!(d.envelope.memo.is_empty());
}

// --- size and wire format ---

#[test]
fn refuses_too_large() {
    let raw = raw_with(&trx_contract());
    let mut big = raw.clone();
    big.extend(std::iter::repeat_n(0u8, MAX_RAW_DATA_LEN));
    assert_eq!(code(&big), "input_too_large");
    // A long memo just under the cap is fine.
    let memo = vec![b'x'; MAX_RAW_DATA_LEN - 300];
    let ok = [
        bfield(1, &[0x12, 0x34]),
        bfield(4, &[1; 8]),
        vfield(8, 5),
        bfield(10, &memo),
        bfield(11, &trx_contract()),
    ]
    .concat();
    assert!(ok.len() <= MAX_RAW_DATA_LEN);
    assert_eq!(code(&ok), "ok");
}

#[test]
fn refuses_truncation_at_every_length() {
    for raw in [trx(), trc20()] {
        for cut in 1..raw.len() {
            // A cut at a field boundary is a different, shorter message: it may only be
            // accepted as exactly itself (and so with its own txid).
            if let Ok(d) = decode(&raw[..cut]) {
                assert_eq!(encode(&d), &raw[..cut], "prefix of {cut} bytes");
                assert_eq!(d.envelope.txid, tron_proto::txid(&raw[..cut]));
            }
        }
        // Cutting inside the contract always fails.
        let contract_end =
            raw.len() - vfield(14, 1_789_999_940_000).len() - vfield(18, 30_000_000).len();
        for cut in 1..contract_end {
            assert_ne!(code(&raw[..cut]), "ok", "prefix of {cut} bytes accepted");
        }
    }
    // A length prefix that runs past the end names truncation.
    let cut = [bfield(1, &[0x12, 0x34]), vec![0x22, 0x08, 1, 2]].concat();
    assert_eq!(code(&cut), "truncated");
}

#[test]
fn refuses_varint_overflow() {
    let raw = [
        bfield(1, &[0x12, 0x34]),
        bfield(4, &[1; 8]),
        tag(8, 0),
        vec![0xff; 10],
        vec![0x01],
    ]
    .concat();
    assert_eq!(code(&raw), "varint_overflow");
}

#[test]
fn refuses_non_minimal_varint() {
    // expiration = 5 written as two bytes.
    let raw = [
        bfield(1, &[0x12, 0x34]),
        bfield(4, &[1; 8]),
        tag(8, 0),
        vec![0x85, 0x00],
        bfield(11, &trx_contract()),
    ]
    .concat();
    assert_eq!(code(&raw), "non_minimal_varint");
    // A non-minimal length prefix.
    let raw = [tag(1, 2), vec![0x82, 0x00, 0x12, 0x34]].concat();
    assert_eq!(code(&raw), "non_minimal_varint");
    // A non-minimal tag.
    let raw = [vec![0x8a, 0x00, 0x02, 0x12, 0x34]].concat();
    assert_eq!(code(&raw), "non_minimal_varint");
}

#[test]
fn refuses_invalid_tag() {
    let mut raw = trx();
    raw.extend_from_slice(&[0x00, 0x05]);
    assert_eq!(code(&raw), "invalid_tag");
}

#[test]
fn refuses_trailing_bytes() {
    let mut raw = trx();
    raw.extend_from_slice(&[0, 0, 0]);
    assert_eq!(code(&raw), "trailing_bytes");
}

#[test]
fn refuses_unknown_fields_at_every_level() {
    // raw: field 2 (ref_block_num is 3; 2 does not exist).
    let raw = [
        bfield(1, &[0x12, 0x34]),
        vfield(2, 1),
        bfield(11, &trx_contract()),
    ]
    .concat();
    assert_eq!(code(&raw), "unknown_field");
    // raw: field 19 past fee_limit.
    let raw = [trx(), vfield(19, 1)].concat();
    assert_eq!(code(&raw), "unknown_field");
    // Contract: field 6.
    let c = [trx_contract(), vfield(6, 1)].concat();
    assert_eq!(code(&raw_with(&c)), "unknown_field");
    // Any: field 3.
    let a = [
        any(
            "type.googleapis.com/protocol.TransferContract",
            &transfer_value(1),
        ),
        vfield(3, 1),
    ]
    .concat();
    assert_eq!(code(&raw_with(&contract(1, &a))), "unknown_field");
    // TransferContract: field 4.
    let v = [transfer_value(1), vfield(4, 1)].concat();
    let c = contract(1, &any("type.googleapis.com/protocol.TransferContract", &v));
    assert_eq!(code(&raw_with(&c)), "unknown_field");
    // TriggerSmartContract: field 7.
    let v = [trigger_value(&call_data(1)), vfield(7, 1)].concat();
    let c = contract(
        31,
        &any("type.googleapis.com/protocol.TriggerSmartContract", &v),
    );
    assert_eq!(code(&raw_with(&c)), "unknown_field");
    // Huge field numbers are unknown too, not a panic.
    let raw = [tag(0x1fff_ffff, 0), varint(1)].concat();
    assert_eq!(code(&raw), "unknown_field");
}

#[test]
fn refuses_duplicate_singular_fields() {
    let raw = [
        bfield(1, &[0x12, 0x34]),
        bfield(1, &[0x12, 0x35]),
        bfield(4, &[1; 8]),
        vfield(8, 5),
        bfield(11, &trx_contract()),
    ]
    .concat();
    assert_eq!(code(&raw), "duplicate_field");
    let v = [transfer_value(5), vfield(3, 6)].concat();
    let c = contract(1, &any("type.googleapis.com/protocol.TransferContract", &v));
    assert_eq!(code(&raw_with(&c)), "duplicate_field");
}

#[test]
fn refuses_out_of_order_fields() {
    let raw = [
        bfield(4, &[1; 8]),
        bfield(1, &[0x12, 0x34]),
        vfield(8, 5),
        bfield(11, &trx_contract()),
    ]
    .concat();
    assert_eq!(code(&raw), "field_order");
}

#[test]
fn refuses_wrong_wire_types() {
    // expiration as bytes.
    let raw = [
        bfield(1, &[0x12, 0x34]),
        bfield(4, &[1; 8]),
        bfield(8, &[5]),
    ]
    .concat();
    assert_eq!(code(&raw), "wrong_wire_type");
    // amount as fixed64 (wire type 1).
    let v = [
        bfield(1, &addr(OWNER)),
        bfield(2, &addr(TO)),
        tag(3, 1),
        vec![1, 0, 0, 0, 0, 0, 0, 0],
    ]
    .concat();
    let c = contract(1, &any("type.googleapis.com/protocol.TransferContract", &v));
    assert_eq!(code(&raw_with(&c)), "wrong_wire_type");
    // A group start (wire type 3) where a message is expected.
    let raw = [bfield(1, &[0x12, 0x34]), tag(11, 3)].concat();
    assert_eq!(code(&raw), "wrong_wire_type");
}

#[test]
fn refuses_explicit_defaults() {
    let raw = [
        bfield(1, &[0x12, 0x34]),
        bfield(4, &[1; 8]),
        vfield(8, 5),
        bfield(10, &[]),
        bfield(11, &trx_contract()),
    ]
    .concat();
    assert_eq!(code(&raw), "default_value_encoded");
    let v = [
        bfield(1, &addr(OWNER)),
        bfield(2, &addr(USDT)),
        vfield(3, 0),
        bfield(4, &call_data(1)),
    ]
    .concat();
    let c = contract(
        31,
        &any("type.googleapis.com/protocol.TriggerSmartContract", &v),
    );
    assert_eq!(code(&raw_with(&c)), "default_value_encoded");
}

#[test]
fn refuses_int32_out_of_range() {
    // type = 2^32 + 1 would truncate to 1 (TransferContract) in a lenient decoder.
    let c = [
        vfield(1, (1u64 << 32) + 1),
        bfield(
            2,
            &any(
                "type.googleapis.com/protocol.TransferContract",
                &transfer_value(1),
            ),
        ),
    ]
    .concat();
    assert_eq!(code(&raw_with(&c)), "int32_out_of_range");
}

#[test]
fn refuses_non_utf8_type_url() {
    let a = [bfield(1, &[0xff, 0xfe]), bfield(2, &transfer_value(1))].concat();
    assert_eq!(code(&raw_with(&contract(1, &a))), "invalid_utf8");
}

// --- structure ---

#[test]
fn refuses_zero_contracts() {
    let raw = [bfield(1, &[0x12, 0x34]), bfield(4, &[1; 8]), vfield(8, 5)].concat();
    assert_eq!(code(&raw), "no_contract");
    assert_eq!(code(&[]), "no_contract");
}

#[test]
fn refuses_several_contracts() {
    let raw = [
        bfield(1, &[0x12, 0x34]),
        bfield(4, &[1; 8]),
        vfield(8, 5),
        bfield(11, &trx_contract()),
        bfield(11, &trx_contract()),
    ]
    .concat();
    assert_eq!(
        decode(&raw).unwrap_err(),
        DecodeError::MultipleContracts { count: 2 }
    );
}

#[test]
fn refuses_other_contract_types_by_name() {
    for (t, name) in [
        (0u64, "AccountCreateContract"),
        (2, "TransferAssetContract"),
        (46, "AccountPermissionUpdateContract"),
        (54, "FreezeBalanceV2Contract"),
        (57, "DelegateResourceContract"),
        (59, "CancelAllUnfreezeV2Contract"),
        (30, "CreateSmartContract"),
        (1000, "unknown"),
    ] {
        let param = any(
            &format!("type.googleapis.com/protocol.{name}"),
            &[0x0a, 0x01, 0x41],
        );
        // Type 0 is the proto3 default, so a canonical encoder leaves the field out.
        let c = if t == 0 {
            bfield(2, &param)
        } else {
            contract(t, &param)
        };
        let err = decode(&raw_with(&c)).unwrap_err();
        assert_eq!(err.code(), "unsupported_contract_type");
        assert!(err.to_string().contains(name), "{err}");
    }
    // A missing type field means type 0, which is refused.
    let c = bfield(
        2,
        &any("type.googleapis.com/protocol.TransferContract", &[]),
    );
    assert_eq!(code(&raw_with(&c)), "unsupported_contract_type");
}

#[test]
fn refuses_mismatched_type_url() {
    for url in [
        "type.googleapis.com/protocol.TriggerSmartContract",
        "type.googleapis.com/protocol.TransferContract ",
        "type.googleapis.com/protocol.transfercontract",
        "type.googleapis.com/TransferContract",
        "example.com/protocol.TransferContract",
        "",
    ] {
        let v = transfer_value(1);
        let a = if url.is_empty() {
            bfield(2, &v)
        } else {
            any(url, &v)
        };
        let err = decode(&raw_with(&contract(1, &a))).unwrap_err();
        assert_eq!(err.code(), "type_url_mismatch", "{url:?}");
    }
    let c = contract(
        31,
        &any(
            "type.googleapis.com/protocol.TransferContract",
            &trigger_value(&call_data(1)),
        ),
    );
    assert_eq!(code(&raw_with(&c)), "type_url_mismatch");
}

#[test]
fn refuses_auths_scripts_and_ref_block_num() {
    let base = |extra_before_contract: Vec<u8>, extra_after: Vec<u8>| {
        [
            bfield(1, &[0x12, 0x34]),
            bfield(4, &[1; 8]),
            vfield(8, 5),
            extra_before_contract,
            bfield(11, &trx_contract()),
            extra_after,
        ]
        .concat()
    };
    assert_eq!(code(&base(bfield(9, b"\x0a\x00"), vec![])), "auths_present");
    // An empty authority element is still an authority.
    assert_eq!(code(&base(bfield(9, b""), vec![])), "auths_present");
    assert_eq!(code(&base(vec![], bfield(12, b"x"))), "scripts_present");
    let raw = [
        bfield(1, &[0x12, 0x34]),
        vfield(3, 77),
        bfield(4, &[1; 8]),
        vfield(8, 5),
        bfield(11, &trx_contract()),
    ]
    .concat();
    assert_eq!(code(&raw), "ref_block_num_set");
}

#[test]
fn refuses_provider_contract_name_and_permission_id() {
    let param = any(
        "type.googleapis.com/protocol.TransferContract",
        &transfer_value(1),
    );
    let with = |extra: Vec<u8>| raw_with(&[vfield(1, 1), bfield(2, &param), extra].concat());
    assert_eq!(code(&with(bfield(3, b"p"))), "provider_present");
    assert_eq!(code(&with(bfield(4, b"n"))), "contract_name_present");
    assert_eq!(
        decode(&with(vfield(5, 2))).unwrap_err(),
        DecodeError::PermissionId { id: 2 }
    );
    // -1 as a sign-extended int32.
    assert_eq!(
        decode(&with(vfield(5, u64::MAX))).unwrap_err(),
        DecodeError::PermissionId { id: -1 }
    );
}

#[test]
fn refuses_bad_ref_block_fields() {
    let raw = |rbb: &[u8], rbh: &[u8]| {
        [
            bfield(1, rbb),
            bfield(4, rbh),
            vfield(8, 5),
            bfield(11, &trx_contract()),
        ]
        .concat()
    };
    assert_eq!(code(&raw(&[1, 2, 3], &[1; 8])), "ref_block_bytes_length");
    assert_eq!(code(&raw(&[1], &[1; 8])), "ref_block_bytes_length");
    assert_eq!(code(&raw(&[1, 2], &[1; 7])), "ref_block_hash_length");
    assert_eq!(code(&raw(&[1, 2], &[1; 32])), "ref_block_hash_length");
    let missing = [
        bfield(4, &[1; 8]),
        vfield(8, 5),
        bfield(11, &trx_contract()),
    ]
    .concat();
    assert_eq!(code(&missing), "ref_block_bytes_length");
}

#[test]
fn refuses_bad_times_and_fee_limit() {
    let with = |exp: Option<u64>, ts: Option<u64>, fee: Option<u64>| {
        [
            bfield(1, &[0x12, 0x34]),
            bfield(4, &[1; 8]),
            exp.map(|v| vfield(8, v)).unwrap_or_default(),
            bfield(11, &trx_contract()),
            ts.map(|v| vfield(14, v)).unwrap_or_default(),
            fee.map(|v| vfield(18, v)).unwrap_or_default(),
        ]
        .concat()
    };
    let neg = |v: i64| v as u64;
    assert_eq!(code(&with(None, None, None)), "expiration_missing");
    assert_eq!(
        code(&with(Some(neg(-5)), None, None)),
        "negative_expiration"
    );
    assert_eq!(
        code(&with(Some(5), Some(neg(-1)), None)),
        "negative_timestamp"
    );
    assert_eq!(
        code(&with(Some(5), None, Some(neg(-1)))),
        "negative_fee_limit"
    );
    assert_eq!(code(&with(Some(5), Some(1), Some(1))), "ok");
}

// --- contract fields ---

#[test]
fn refuses_bad_addresses_in_every_field() {
    let short = &addr(OWNER)[..20];
    let mut bad_prefix = addr(OWNER);
    bad_prefix[0] = 0xa0;
    for bad in [short.to_vec(), bad_prefix, [addr(OWNER), vec![0]].concat()] {
        let v = [bfield(1, &bad), bfield(2, &addr(TO)), vfield(3, 1)].concat();
        let c = contract(1, &any("type.googleapis.com/protocol.TransferContract", &v));
        let e = decode(&raw_with(&c)).unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::BadAddress {
                    field: "owner_address",
                    ..
                }
            ),
            "{e:?}"
        );
        let v = [bfield(1, &addr(OWNER)), bfield(2, &bad), vfield(3, 1)].concat();
        let c = contract(1, &any("type.googleapis.com/protocol.TransferContract", &v));
        let e = decode(&raw_with(&c)).unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::BadAddress {
                    field: "to_address",
                    ..
                }
            ),
            "{e:?}"
        );
        let v = [
            bfield(1, &addr(OWNER)),
            bfield(2, &bad),
            bfield(4, &call_data(1)),
        ]
        .concat();
        let c = contract(
            31,
            &any("type.googleapis.com/protocol.TriggerSmartContract", &v),
        );
        let e = decode(&raw_with(&c)).unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::BadAddress {
                    field: "contract_address",
                    ..
                }
            ),
            "{e:?}"
        );
    }
    // Missing owner entirely.
    let v = [bfield(2, &addr(TO)), vfield(3, 1)].concat();
    let c = contract(1, &any("type.googleapis.com/protocol.TransferContract", &v));
    assert_eq!(code(&raw_with(&c)), "bad_address");
}

#[test]
fn refuses_non_positive_trx_amount() {
    let v = [bfield(1, &addr(OWNER)), bfield(2, &addr(TO))].concat();
    let c = contract(1, &any("type.googleapis.com/protocol.TransferContract", &v));
    assert_eq!(
        decode(&raw_with(&c)).unwrap_err(),
        DecodeError::AmountNotPositive { amount: 0 }
    );
    let v = [
        bfield(1, &addr(OWNER)),
        bfield(2, &addr(TO)),
        vfield(3, -7i64 as u64),
    ]
    .concat();
    let c = contract(1, &any("type.googleapis.com/protocol.TransferContract", &v));
    assert_eq!(
        decode(&raw_with(&c)).unwrap_err(),
        DecodeError::AmountNotPositive { amount: -7 }
    );
}

#[test]
fn refuses_trc20_data_length() {
    let full = call_data(1);
    for len in [3usize, 4, 36, 67] {
        let e = decode(&raw_with(&trc20_contract_with(&full[..len]))).unwrap_err();
        assert_eq!(e, DecodeError::Trc20DataLength { len }, "len {len}");
    }
    // No data at all (the field is absent).
    let v = [bfield(1, &addr(OWNER)), bfield(2, &addr(USDT))].concat();
    let c = contract(
        31,
        &any("type.googleapis.com/protocol.TriggerSmartContract", &v),
    );
    assert_eq!(
        decode(&raw_with(&c)).unwrap_err(),
        DecodeError::Trc20DataLength { len: 0 }
    );
    let long = [full, vec![0]].concat();
    assert_eq!(
        decode(&raw_with(&trc20_contract_with(&long))).unwrap_err(),
        DecodeError::Trc20DataLength { len: 69 }
    );
}

#[test]
fn refuses_other_selectors_by_name() {
    for (sel, name, len) in [
        ("095ea7b3", "approve", 68),
        ("23b872dd", "transferFrom", 100),
        ("39509351", "increaseAllowance", 68),
        ("deadbeef", "unknown", 68),
    ] {
        let mut data = hex::decode(sel).unwrap();
        data.resize(len, 0);
        data[len - 1] = 1;
        let e = decode(&raw_with(&trc20_contract_with(&data))).unwrap_err();
        assert_eq!(e.code(), "trc20_selector");
        assert!(e.to_string().contains(name), "{e}");
    }
}

#[test]
fn refuses_dirty_address_padding() {
    for i in 4..16 {
        let mut data = call_data(1);
        data[i] = 1;
        assert_eq!(
            code(&raw_with(&trc20_contract_with(&data))),
            "trc20_address_padding"
        );
    }
}

#[test]
fn refuses_zero_token_amount() {
    assert_eq!(
        code(&raw_with(&trc20_contract_with(&call_data(0)))),
        "trc20_zero_amount"
    );
}

#[test]
fn refuses_call_value_token_value_and_token_id() {
    for (n, want) in [
        (3u64, "call_value_nonzero"),
        (5, "call_token_value_nonzero"),
        (6, "token_id_nonzero"),
    ] {
        let mut v = vec![bfield(1, &addr(OWNER)), bfield(2, &addr(USDT))];
        let data = bfield(4, &call_data(1));
        if n == 3 {
            v.push(vfield(3, 1));
            v.push(data);
        } else {
            v.push(data);
            v.push(vfield(n, 1));
        }
        let c = contract(
            31,
            &any(
                "type.googleapis.com/protocol.TriggerSmartContract",
                &v.concat(),
            ),
        );
        assert_eq!(code(&raw_with(&c)), want);
    }
}

/// Every variant has its own code, and the decode codes are exactly the `Decode` category
/// of [`ReasonCode::ALL`]: a variant added with a new code fails here until it has an example.
#[test]
fn every_code_is_distinct_and_listed() {
    use crate::reason::{Category, ReasonCode};
    use std::collections::BTreeSet;
    let samples = DecodeError::examples();
    let codes: BTreeSet<ReasonCode> = samples.iter().map(|e| e.reason()).collect();
    assert_eq!(codes.len(), samples.len(), "two variants share a code");
    let listed: BTreeSet<ReasonCode> = ReasonCode::ALL
        .iter()
        .copied()
        .filter(|c| c.category() == Category::Decode)
        .collect();
    assert_eq!(codes, listed);
}
