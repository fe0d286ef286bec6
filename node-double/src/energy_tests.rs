//! The energy and fee model ([`crate::fees`]) through the chain and the HTTP endpoints:
//! energy burnt for TRC-20 transfers, `OUT_OF_ENERGY` when TRX or the fee limit is short,
//! the account-creation fee, and `getchainparameters`, `getaccount`,
//! `triggerconstantcontract` in java-tron's shapes.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use tron_proto::{abi, Address, U256};

use crate::chain::tests::{accounts, address, dest, key, token, Build, START_SUN};
use crate::chain::{BroadcastCode, Chain, Receipt};
use crate::fees::{ENERGY_REVERT, ENERGY_TRANSFER_TO_HOLDER, ENERGY_TRANSFER_TO_NEW_HOLDER};
use crate::http::{router, App};
use crate::render::info_json;

/// An address with no account and no tokens.
fn stranger() -> Address {
    Address::from_evm([0xe7; 20])
}

fn setup() -> (Chain, k256::ecdsa::SigningKey, Address) {
    let k = key(0x11);
    let owner = address(&k);
    let mut chain = Chain::new(accounts(owner), 3, 1_000_000);
    chain.produce_block(1_003_000);
    (chain, k, owner)
}

fn send_token(
    chain: &mut Chain,
    k: &k256::ecdsa::SigningKey,
    to: Address,
    units: u32,
    fee_limit: i64,
) -> [u8; 32] {
    let owner = address(k);
    let mut b =
        Build::on(chain.head()).trc20(owner, token(), abi::encode_transfer(&to, U256::from(units)));
    b.fee_limit = fee_limit;
    b.timestamp += i64::from(units) + fee_limit; // distinct txids
    let txid = chain.broadcast(&b.sign(k)).unwrap();
    chain.produce_block(0);
    txid
}

#[test]
fn a_token_transfer_burns_its_energy_at_the_energy_price() {
    let (mut chain, k, owner) = setup();
    // To an address without the token: the larger figure.
    let first = send_token(&mut chain, &k, stranger(), 100, 30_000_000);
    let burnt_first = ENERGY_TRANSFER_TO_NEW_HOLDER * 100;
    let info = info_json(chain.tx_info(&first, false).unwrap());
    assert_eq!(info["receipt"]["result"], "SUCCESS");
    assert_eq!(
        info["receipt"]["energy_usage_total"],
        ENERGY_TRANSFER_TO_NEW_HOLDER
    );
    assert_eq!(info["receipt"]["energy_fee"], burnt_first);
    assert_eq!(info["fee"], burnt_first);
    assert_eq!(
        chain.accounts().trx(&owner),
        START_SUN - u128::from(burnt_first)
    );
    // Now it holds some: the smaller figure, at a new price.
    chain.params_mut().energy_fee = 210;
    let second = send_token(&mut chain, &k, stranger(), 50, 30_000_000);
    let burnt_second = ENERGY_TRANSFER_TO_HOLDER * 210;
    let info = info_json(chain.tx_info(&second, false).unwrap());
    assert_eq!(
        info["receipt"]["energy_usage_total"],
        ENERGY_TRANSFER_TO_HOLDER
    );
    assert_eq!(info["fee"], burnt_second);
    assert_eq!(
        chain.accounts().trx(&owner),
        START_SUN - u128::from(burnt_first + burnt_second)
    );
    assert_eq!(
        chain.accounts().trc20(&token(), &stranger()),
        U256::from(150u32)
    );
    // A revert (short of tokens) still burns the energy it used.
    let short = send_token(&mut chain, &k, stranger(), 10_000, 30_000_000);
    let info = chain.tx_info(&short, false).unwrap();
    assert_eq!(info.receipt, Receipt::Revert);
    assert_eq!(info.fee.energy_fee, ENERGY_REVERT * 210);
    // A token balance alone creates no account.
    assert!(!chain.accounts().exists(&stranger()));
}

#[test]
fn out_of_energy_when_the_trx_balance_is_short_burns_it_all_and_moves_nothing() {
    let k = key(0x12);
    let owner = address(&k);
    // Exactly one sun short of the energy of a transfer to a new holder.
    let short = ENERGY_TRANSFER_TO_NEW_HOLDER * 100 - 1;
    let json = format!(
        r#"{{"trx": {{"{owner}": "{short}"}}, "trc20": {{"{}": {{"{owner}": "500"}}}}}}"#,
        token()
    );
    let mut chain = Chain::new(
        crate::Accounts::from_json(json.as_bytes()).unwrap(),
        3,
        1_000_000,
    );
    chain.produce_block(1_003_000);
    let txid = send_token(&mut chain, &k, stranger(), 100, 30_000_000);
    let info = chain.tx_info(&txid, false).unwrap();
    assert_eq!(info.receipt, Receipt::OutOfEnergy);
    assert!(info.logs.is_empty());
    let v = info_json(info);
    assert_eq!(v["receipt"]["result"], "OUT_OF_ENERGY");
    assert_eq!(v["result"], "FAILED");
    assert_eq!(v["fee"], short);
    assert_eq!(v["receipt"]["energy_fee"], short);
    assert_eq!(chain.accounts().trx(&owner), 0);
    assert_eq!(chain.accounts().trc20(&token(), &owner), U256::from(500u32));
    assert_eq!(chain.accounts().trc20(&token(), &stranger()), U256::ZERO);
}

#[test]
fn out_of_energy_when_the_fee_limit_is_too_low_burns_the_fee_limit_only() {
    let (mut chain, k, owner) = setup();
    let limit = ENERGY_TRANSFER_TO_NEW_HOLDER * 100 - 100;
    let txid = send_token(&mut chain, &k, stranger(), 100, limit as i64);
    let info = chain.tx_info(&txid, false).unwrap();
    assert_eq!(info.receipt, Receipt::OutOfEnergy);
    assert_eq!(info.fee.energy_fee, limit);
    assert_eq!(
        info.fee.energy_usage_total,
        ENERGY_TRANSFER_TO_NEW_HOLDER - 1
    );
    assert_eq!(chain.accounts().trx(&owner), START_SUN - u128::from(limit));
    assert_eq!(chain.accounts().trc20(&token(), &owner), U256::from(500u32));
    // The same transfer with exactly the energy cost as its limit goes through.
    let exact = send_token(&mut chain, &k, stranger(), 100, (limit + 100) as i64);
    assert_eq!(
        chain.tx_info(&exact, false).unwrap().receipt,
        Receipt::Success
    );
}

#[test]
fn a_trx_transfer_to_a_new_account_burns_the_creation_fee_from_the_sender() {
    let (mut chain, k, owner) = setup();
    let amount = 5_000_000;
    let tx = Build::on(chain.head())
        .trx(owner, stranger(), amount)
        .sign(&k);
    let txid = chain.broadcast(&tx).unwrap();
    chain.produce_block(0);
    let info = chain.tx_info(&txid, false).unwrap();
    assert_eq!(info.receipt, Receipt::Success);
    let v = info_json(info);
    assert_eq!(v["fee"], 1_100_000);
    assert_eq!(v["receipt"]["net_fee"], 100_000);
    assert!(v["receipt"].get("result").is_none(), "{v}");
    assert_eq!(
        chain.accounts().trx(&owner),
        START_SUN - amount as u128 - 1_100_000
    );
    assert!(chain.accounts().exists(&stranger()));
    assert_eq!(chain.accounts().trx(&stranger()), amount as u128);
    // The account exists now: a second transfer burns nothing.
    let mut b = Build::on(chain.head()).trx(owner, stranger(), amount);
    b.timestamp += 1;
    let again = chain.broadcast(&b.sign(&k)).unwrap();
    chain.produce_block(0);
    assert!(info_json(chain.tx_info(&again, false).unwrap())
        .get("fee")
        .is_none());
    // A reorg undoes the fee and the creation as well as the transfer.
    chain.reorg(2, false, 0).unwrap();
    assert_eq!(chain.accounts().trx(&owner), START_SUN);
    assert!(!chain.accounts().exists(&stranger()));
}

#[test]
fn broadcasts_that_cannot_pay_or_have_no_account_are_contract_validate_errors() {
    let (mut chain, k, owner) = setup();
    let head = chain.head().clone();
    // Amount plus the creation fee must fit the balance.
    let over = Build::on(&head)
        .trx(owner, stranger(), START_SUN as i64 - 1_000_000)
        .sign(&k);
    assert_eq!(
        chain.broadcast(&over).unwrap_err().code,
        BroadcastCode::ContractValidate
    );
    // The same amount to an existing account fits.
    chain
        .broadcast(
            &Build::on(&head)
                .trx(owner, dest(), START_SUN as i64 - 1_000_000)
                .sign(&k),
        )
        .unwrap();
    // A contract call from an address with no account.
    let nobody = key(0x33);
    let call = Build::on(&head)
        .trc20(
            address(&nobody),
            token(),
            abi::encode_transfer(&dest(), U256::ONE),
        )
        .sign(&nobody);
    assert_eq!(
        chain.broadcast(&call).unwrap_err().code,
        BroadcastCode::ContractValidate
    );
    // A fee limit above the network maximum.
    let mut b = Build::on(&head).trc20(owner, token(), abi::encode_transfer(&dest(), U256::ONE));
    b.fee_limit = crate::fees::MAX_FEE_LIMIT_SUN + 1;
    assert_eq!(
        chain.broadcast(&b.sign(&k)).unwrap_err().code,
        BroadcastCode::ContractValidate
    );
}

async fn post(app: &Arc<App>, path: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("POST")
        .uri(path)
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = router(Arc::clone(app)).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn param(v: &Value, key: &str) -> Option<u64> {
    v["chainParameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["key"] == key)
        .map(|p| p["value"].as_u64().unwrap_or(0))
}

#[tokio::test]
async fn chain_parameters_are_served_and_set_by_the_control() {
    let (chain, _, _) = setup();
    let app = Arc::new(App::new(chain, None));
    let (s, v) = post(&app, "/wallet/getchainparameters", json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(param(&v, "getEnergyFee"), Some(100));
    assert_eq!(param(&v, "getTransactionFee"), Some(1_000));
    assert_eq!(
        param(&v, "getCreateNewAccountFeeInSystemContract"),
        Some(1_000_000)
    );
    assert_eq!(param(&v, "getCreateAccountFee"), Some(100_000));
    let (s, v) = post(
        &app,
        "/double/chain_parameters",
        json!({"getEnergyFee": 420, "getCreateAccountFee": 0}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = post(&app, "/wallet/getchainparameters", json!({})).await;
    assert_eq!(param(&v, "getEnergyFee"), Some(420));
    // A zero value has no `value` member.
    let zero = v["chainParameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["key"] == "getCreateAccountFee")
        .unwrap()
        .clone();
    assert_eq!(zero, json!({"key": "getCreateAccountFee"}));
    assert_eq!(app.with_chain(|c| c.params().energy_fee), 420);
    // Refusals change nothing.
    for (body, code) in [
        (json!({"getEnergyFee": 1, "getNope": 5}), "param_unknown"),
        (json!({"getEnergyFee": -1}), "param_not_integer"),
        (json!({"getEnergyFee": "7"}), "param_not_integer"),
    ] {
        let (s, v) = post(&app, "/double/chain_parameters", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            v["Error"].as_str().unwrap().starts_with(code),
            "{body}: {v}"
        );
    }
    let (s, _) = post(&app, "/double/chain_parameters", json!([1])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(app.with_chain(|c| c.params().energy_fee), 420);
}

#[tokio::test]
async fn getaccount_answers_the_balance_or_nothing() {
    let (chain, _, owner) = setup();
    let app = Arc::new(App::new(chain, None));
    let (_, v) = post(
        &app,
        "/wallet/getaccount",
        json!({"address": owner.to_base58(), "visible": true}),
    )
    .await;
    assert_eq!(v["balance"], START_SUN as u64);
    assert_eq!(v["address"], owner.to_base58());
    let (_, v) = post(
        &app,
        "/wallet/getaccount",
        json!({"address": hex::encode(owner.as_bytes())}),
    )
    .await;
    assert_eq!(v["address"], hex::encode(owner.as_bytes()));
    // An existing account with no TRX: no balance member. No account: {}.
    let (_, v) = post(
        &app,
        "/wallet/getaccount",
        json!({"address": dest().to_base58(), "visible": true}),
    )
    .await;
    assert!(
        v.get("balance").is_none() && v["address"].is_string(),
        "{v}"
    );
    let (_, v) = post(
        &app,
        "/wallet/getaccount",
        json!({"address": stranger().to_base58(), "visible": true}),
    )
    .await;
    assert_eq!(v, json!({}));
    for bad in [
        json!({}),
        json!({"address": "Tnope", "visible": true}),
        json!({"address": "zz"}),
    ] {
        let (s, v) = post(&app, "/wallet/getaccount", bad.clone()).await;
        assert_eq!(s, StatusCode::OK);
        assert!(v["Error"].is_string(), "{bad}: {v}");
    }
}

#[tokio::test]
async fn triggerconstantcontract_reads_balances_and_estimates_transfers() {
    let (chain, _, owner) = setup();
    let app = Arc::new(App::new(chain, None));
    let word = |a: &Address| format!("{:0>64}", hex::encode(a.evm_bytes()));
    let call = |selector: &str, parameter: String| {
        json!({
            "owner_address": owner.to_base58(),
            "contract_address": token().to_base58(),
            "function_selector": selector,
            "parameter": parameter,
            "visible": true,
        })
    };
    let (_, v) = post(
        &app,
        "/wallet/triggerconstantcontract",
        call("balanceOf(address)", word(&owner)),
    )
    .await;
    assert_eq!(v["result"]["result"], true);
    assert_eq!(v["constant_result"][0], format!("{:064x}", 500));
    let transfer = |to: &Address, units: u32| format!("{}{:064x}", word(to), units);
    let (_, v) = post(
        &app,
        "/wallet/triggerconstantcontract",
        call("transfer(address,uint256)", transfer(&stranger(), 500)),
    )
    .await;
    assert_eq!(v["result"], json!({"result": true}), "{v}");
    assert_eq!(v["energy_used"], ENERGY_TRANSFER_TO_NEW_HOLDER);
    assert_eq!(v["constant_result"][0], format!("{:064x}", 1));
    // To a holder (the owner's own address holds the token): the smaller figure.
    let (_, v) = post(
        &app,
        "/wallet/triggerconstantcontract",
        call("transfer(address,uint256)", transfer(&owner, 1)),
    )
    .await;
    assert_eq!(v["energy_used"], ENERGY_TRANSFER_TO_HOLDER);
    // Short of tokens: a revert with its message, as text with visible.
    let (_, v) = post(
        &app,
        "/wallet/triggerconstantcontract",
        call("transfer(address,uint256)", transfer(&stranger(), 501)),
    )
    .await;
    assert_eq!(v["result"]["message"], crate::chain::REVERT_MESSAGE);
    assert_eq!(v["transaction"]["ret"][0]["ret"], "FAILED");
    assert_eq!(v["energy_used"], ENERGY_REVERT);
    // The same with hex addresses (visible false) and raw call data.
    let data = hex::encode(abi::encode_transfer(&stranger(), U256::from(501u32)));
    let (_, v) = post(
        &app,
        "/wallet/triggerconstantcontract",
        json!({
            "owner_address": hex::encode(owner.as_bytes()),
            "contract_address": hex::encode(token().as_bytes()),
            "data": data,
        }),
    )
    .await;
    assert_eq!(
        v["result"]["message"],
        hex::encode(crate::chain::REVERT_MESSAGE)
    );
    // Not a contract the double knows.
    let mut other = call("balanceOf(address)", word(&owner));
    other["contract_address"] = json!(stranger().to_base58());
    let (_, v) = post(&app, "/wallet/triggerconstantcontract", other).await;
    assert_eq!(v["result"]["code"], "CONTRACT_VALIDATE_ERROR");
    // Malformed requests.
    let mut bad = call("balanceOf(address)", "zz".into());
    let (_, v) = post(&app, "/wallet/triggerconstantcontract", bad.clone()).await;
    assert!(v["Error"].is_string(), "{v}");
    bad["parameter"] = json!(word(&owner));
    bad["owner_address"] = json!("nope");
    let (_, v) = post(&app, "/wallet/triggerconstantcontract", bad).await;
    assert!(v["Error"].is_string(), "{v}");
    // Estimating changes nothing.
    assert_eq!(
        app.with_chain(|c| c.accounts().trc20(&token(), &owner)),
        U256::from(500u32)
    );
}
