//! The sweeper's state machine against the node double on a real socket (its energy and
//! fee model deciding what things cost) and a signer double on gRPC that holds the gas
//! key and the deposit keys derived from a published test seed. Each test drives the
//! watcher, the pipeline and the sweeper pass by pass and produces blocks by hand, so
//! nothing depends on wall-clock time.
//!
//! What the real signer adds (it alone refuses a sweep elsewhere, a gas top-up above its
//! cap, a deposit key outside the range) is the end-to-end test's (`sweep_e2e.rs`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bip32::{DerivationPath, Prefix, XPrv};
use k256::ecdsa::SigningKey;
use serde_json::{json, Value};
use tron_broadcaster::builder;
use tron_broadcaster::config::{Network, SweepConfig};
use tron_broadcaster::deposit_address::AccountXpub;
use tron_broadcaster::invoice::{ExpiryRequest, Invoice, InvoiceStatus, StatusChange};
use tron_broadcaster::model::{Asset, PayoutKind, Status};
use tron_broadcaster::node::Node;
use tron_broadcaster::pipeline::{Pipeline, Settings};
use tron_broadcaster::receive_store::{CreatedInvoice, ReceiveStore};
use tron_broadcaster::signer::SignerConn;
use tron_broadcaster::store::{Store, StoreError};
use tron_broadcaster::sweep::SweepStatus;
use tron_broadcaster::sweeper::Sweeper;
use tron_broadcaster::watcher::Watcher;
use tron_node_double::{Accounts, Options, Running};
use tron_proto::signer::signer_server::{Signer, SignerServer};
use tron_proto::signer::{
    EvaluateResponse, GetPolicyRequest, GetPolicyResponse, ListKeysRequest, ListKeysResponse,
    SignRequest, SignResponse,
};
use tron_proto::{Address, U256};

const NILE_USDT: &str = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf";
/// The BIP-39 test seed whose m/44'/195'/0'/0/0 and /1 are published.
const SEED: &str = "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc1\
                    9a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4";
const ADDRESS_0: &str = "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH";
const SOLID_AFTER: u32 = 3;
const GAS_START_SUN: u64 = 100_000_000;
const TENANT: &str = "shop";

fn usdt() -> Address {
    NILE_USDT.parse().unwrap()
}

fn seed_key(path: &str) -> XPrv {
    let path: DerivationPath = path.parse().unwrap();
    XPrv::derive_from_path(hex::decode(SEED).unwrap(), &path).unwrap()
}

fn xpub() -> AccountXpub {
    AccountXpub::parse(
        &seed_key("m/44'/195'/0'")
            .public_key()
            .to_string(Prefix::XPUB),
    )
    .unwrap()
}

fn gas_key() -> SigningKey {
    SigningKey::from_slice(&[0x6a; 32]).unwrap()
}

fn address_of(k: &SigningKey) -> Address {
    Address::from_verifying_key(k.verifying_key())
}

fn collection() -> Address {
    Address::from_evm([0xc0; 20])
}

/// One Sign call as the signer double saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    payout_id: String,
    key: String,
    deposit_index: Option<u32>,
}

/// A signer double holding the gas key and deposit keys 0..4 of the test seed. It signs
/// what it holds a key for unless told to refuse a payout id (the real signer's policy is
/// the end-to-end test's).
#[derive(Clone, Default)]
struct KeySigner {
    keys: Arc<HashMap<Address, SigningKey>>,
    calls: Arc<Mutex<Vec<Call>>>,
    /// Payout-id suffixes (`#sweep1`, …) to refuse with `destination_not_allowed`.
    refuse: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl Signer for KeySigner {
    async fn sign(
        &self,
        request: tonic::Request<SignRequest>,
    ) -> Result<tonic::Response<SignResponse>, tonic::Status> {
        let req = request.into_inner();
        self.calls.lock().unwrap().push(Call {
            payout_id: req.payout_id.clone(),
            key: req.key.clone(),
            deposit_index: req.deposit_index,
        });
        if self
            .refuse
            .lock()
            .unwrap()
            .iter()
            .any(|s| req.payout_id.ends_with(s.as_str()))
        {
            let mut st = tonic::Status::permission_denied(
                "[destination_not_allowed] not the deposit account's collection address",
            );
            st.metadata_mut()
                .insert("reason-code", "destination_not_allowed".parse().unwrap());
            return Err(st);
        }
        let key: Address = req
            .key
            .parse()
            .map_err(|_| tonic::Status::invalid_argument("key"))?;
        let Some(k) = self.keys.get(&key) else {
            return Err(tonic::Status::not_found("no such key"));
        };
        let txid = tron_proto::txid(&req.raw_data);
        let (sig, recid) = k.sign_prehash_recoverable(&txid).unwrap();
        let mut signature = sig.to_bytes().to_vec();
        signature.push(recid.to_byte());
        Ok(tonic::Response::new(SignResponse {
            txid: txid.to_vec(),
            signed_transaction: builder::signed_transaction(&req.raw_data, &signature),
            signature,
            decision: None,
            replayed: false,
        }))
    }
    async fn evaluate(
        &self,
        _: tonic::Request<SignRequest>,
    ) -> Result<tonic::Response<EvaluateResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("double"))
    }
    async fn list_keys(
        &self,
        _: tonic::Request<ListKeysRequest>,
    ) -> Result<tonic::Response<ListKeysResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("double"))
    }
    async fn freeze(
        &self,
        _: tonic::Request<tron_proto::signer::FreezeRequest>,
    ) -> Result<tonic::Response<tron_proto::signer::FreezeResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("double"))
    }
    async fn get_policy(
        &self,
        _: tonic::Request<GetPolicyRequest>,
    ) -> Result<tonic::Response<GetPolicyResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("double"))
    }
    type ReadPolicyTextStream = tokio_stream::Iter<
        std::vec::IntoIter<Result<tron_proto::signer::PolicyTextChunk, tonic::Status>>,
    >;
    async fn read_policy_text(
        &self,
        _: tonic::Request<tron_proto::signer::ReadPolicyTextRequest>,
    ) -> Result<tonic::Response<Self::ReadPolicyTextStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("double"))
    }
}

impl KeySigner {
    async fn start() -> (KeySigner, String) {
        let mut keys = HashMap::new();
        keys.insert(address_of(&gas_key()), gas_key());
        for i in 0..4 {
            let k = seed_key(&format!("m/44'/195'/0'/0/{i}"))
                .private_key()
                .clone();
            keys.insert(address_of(&k), k);
        }
        let s = KeySigner {
            keys: Arc::new(keys),
            ..Default::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let svc = SignerServer::new(s.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
        });
        (s, addr.to_string())
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

/// The three tasks of `serve` over one database, driven by hand.
struct Parts {
    pipeline: Pipeline,
    watcher: Watcher,
    sweeper: Sweeper,
    receive: ReceiveStore,
}

struct Env {
    dir: tempfile::TempDir,
    node: Running,
    signer: KeySigner,
    endpoint: String,
    parts: Option<Parts>,
    margin: u32,
}

fn parts(db: &Path, node_url: &str, endpoint: &str, margin: u32) -> Parts {
    let store = Arc::new(Store::open(db).unwrap());
    let receive = ReceiveStore::open(store.clone()).unwrap();
    let node = || Node::new(node_url, None, Duration::from_secs(5)).unwrap();
    let settings = Settings {
        network: Network::Nile,
        key: Address::from_evm([0x99; 20]),
        usdt_contract: usdt(),
        fee_limit_sun: 30_000_000,
        expiration: Duration::from_secs(600),
        batch_expiration: Duration::from_secs(12 * 3600),
        solidity_margin: Duration::from_secs(60),
        poll_interval: Duration::from_millis(1),
        max_backoff: Duration::ZERO,
    };
    let conn = SignerConn::new(endpoint.into(), Duration::from_secs(5), None);
    let cfg = SweepConfig {
        gas_key: address_of(&gas_key()),
        collection: collection(),
        min_usdt_units: Some(10_000_000),
        min_trx_sun: Some(1_000_000),
        energy_margin_percent: margin,
    };
    Parts {
        pipeline: Pipeline::new(store.clone(), node(), Some(conn), settings),
        watcher: Watcher::new(
            node(),
            receive.clone(),
            usdt(),
            Duration::from_millis(1),
            Duration::ZERO,
        ),
        sweeper: Sweeper::new(
            store,
            receive.clone(),
            node(),
            xpub(),
            usdt(),
            cfg,
            Duration::from_millis(1),
        ),
        receive,
    }
}

async fn env(margin: u32) -> Env {
    let accounts = Accounts::from_json(
        json!({ "trx": {
            address_of(&gas_key()).to_base58(): GAS_START_SUN.to_string(),
            collection().to_base58(): "0",
        }})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let node = tron_node_double::start(Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        block_interval: Duration::from_secs(3600),
        solid_after: SOLID_AFTER,
        accounts,
        api_key: None,
    })
    .await
    .unwrap();
    node.app.set_default_token(usdt());
    let (signer, endpoint) = KeySigner::start().await;
    let dir = tempfile::tempdir().unwrap();
    let p = parts(&dir.path().join("b.redb"), &node.url(), &endpoint, margin);
    Env {
        dir,
        node,
        signer,
        endpoint,
        parts: Some(p),
        margin,
    }
}

impl Env {
    fn p(&self) -> &Parts {
        self.parts.as_ref().unwrap()
    }

    /// A crash and restart: every task and the database handle go, then come back.
    fn restart(&mut self) {
        drop(self.parts.take());
        self.parts = Some(parts(
            &self.dir.path().join("b.redb"),
            &self.node.url(),
            &self.endpoint,
            self.margin,
        ));
    }

    fn produce(&self, n: u32) {
        for _ in 0..n {
            self.node
                .app
                .with_chain(|c| c.produce_block(tron_node_double::http::now_ms()));
        }
    }

    fn invoice(&self, id: &str, units: u64) -> Invoice {
        self.invoice_in(id, units, Asset::Usdt)
    }

    fn invoice_in(&self, id: &str, units: u64, asset: Asset) -> Invoice {
        let now = tron_broadcaster::model::now_ms();
        let inv = Invoice {
            tenant: TENANT.into(),
            id: id.into(),
            created_by: "k".into(),
            asset,
            amount_units: units,
            tolerance_units: 0,
            expiry: ExpiryRequest::In(3_600_000),
            expires_at_ms: now + 3_600_000,
            reference: None,
            metadata: json!({}),
            deposit_index: 0,
            address: String::new(),
            status: InvoiceStatus::New,
            created_at_ms: now,
            updated_at_ms: now,
            payments: vec![],
            history: vec![StatusChange {
                status: InvoiceStatus::New,
                at_ms: now,
            }],
            sweeps: vec![],
        };
        let x = xpub();
        match self
            .p()
            .receive
            .create_invoice::<StoreError>(inv, |i| Ok(x.address(i).unwrap().to_base58()))
            .unwrap()
        {
            CreatedInvoice::New(i) => i,
            other => panic!("{other:?}"),
        }
    }

    fn get(&self, id: &str) -> Invoice {
        self.p().receive.get_invoice(TENANT, id).unwrap().unwrap()
    }

    fn pay(&self, to: &str, units: u64, asset: &str) {
        let r = self.node.app.with_chain(|c| {
            let token = (asset == "USDT").then(usdt);
            tron_node_double::sim::submit(
                c,
                &tron_node_double::sim::Payment {
                    kind: tron_node_double::sim::Kind::Transfer,
                    token,
                    from: tron_node_double::sim::customer(),
                    to: to.parse().unwrap(),
                    amount: U256::from(units),
                    via: tron_node_double::sim::batcher(),
                    transfers: 1,
                },
            )
        });
        r.unwrap();
    }

    async fn watch(&self) {
        self.p().watcher.poll().await.unwrap();
    }

    async fn tick(&self) {
        let r = self.p().pipeline.tick().await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
    }

    async fn sweep(&self) {
        let r = self.p().sweeper.pass().await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
    }

    /// Pays invoice `id` and settles it: `paid`.
    async fn paid(&self, id: &str, units: u64) -> Invoice {
        let inv = self.invoice(id, units);
        self.watch().await; // the watcher starts at the solidified block
        self.pay(&inv.address, units, "USDT");
        self.produce(1 + SOLID_AFTER);
        self.watch().await;
        let inv = self.get(id);
        assert_eq!(inv.status, InvoiceStatus::Paid);
        inv
    }

    /// Includes and solidifies what the pipeline broadcast, then lets the pipeline see it.
    async fn confirm(&self) {
        self.tick().await;
        self.produce(1 + SOLID_AFTER);
        self.tick().await;
        self.watch().await;
    }

    fn trx(&self, a: &Address) -> u128 {
        self.node.app.with_chain(|c| c.accounts().trx(a))
    }

    fn token(&self, a: &Address) -> U256 {
        self.node.app.with_chain(|c| c.accounts().trc20(&usdt(), a))
    }

    fn payout(&self, id: &str) -> Option<tron_broadcaster::model::Payout> {
        self.p().pipeline.store().get_for(TENANT, id).unwrap()
    }

    fn events(&self) -> Vec<String> {
        self.p()
            .receive
            .events_after(TENANT, 0, 1000)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }
}

fn sweep_of(inv: &Invoice) -> tron_broadcaster::sweep::Sweep {
    inv.sweeps.last().cloned().expect("a sweep round")
}

#[tokio::test]
async fn paid_invoice_is_topped_up_by_the_exact_shortfall_then_swept() {
    let env = env(0).await;
    let inv = env.paid("inv-1", 25_000_000).await;
    let deposit: Address = inv.address.parse().unwrap();
    assert_eq!(inv.address, ADDRESS_0);

    // Planned from the node: no TRX at the address, 130,285 energy (the collection
    // holds no USDT yet) at 100 sun.
    env.sweep().await;
    let s = sweep_of(&env.get("inv-1"));
    assert_eq!(s.status, SweepStatus::ToppingUp);
    assert_eq!(
        (s.units, s.energy, s.energy_price_sun),
        (25_000_000, 130_285, 100)
    );
    assert_eq!((s.fee_limit_sun, s.topup_sun), (13_028_500, 13_028_500));
    let gas = env.payout("inv-1#gas1").unwrap();
    assert_eq!(
        (
            gas.kind,
            gas.amount_units,
            gas.to.as_str(),
            gas.deposit_index
        ),
        (PayoutKind::Gas, 13_028_500, ADDRESS_0, Some(0))
    );
    assert!(
        env.payout("inv-1#sweep1").is_none(),
        "no sweep before the top-up"
    );

    // The top-up confirms; the watcher does not take it for a customer's payment.
    env.confirm().await;
    assert_eq!(env.payout("inv-1#gas1").unwrap().status, Status::Confirmed);
    assert_eq!(env.trx(&deposit), 13_028_500);
    assert_eq!(env.get("inv-1").payments.len(), 1);
    env.sweep().await;
    let s = sweep_of(&env.get("inv-1"));
    assert_eq!(s.status, SweepStatus::Sweeping);
    // The address had no account: the gas key paid its creation.
    assert_eq!(s.topup_fee_sun, 1_100_000);
    let sp = env.payout("inv-1#sweep1").unwrap();
    assert_eq!(
        (
            sp.kind,
            sp.amount_units,
            sp.from.as_deref(),
            sp.fee_limit_sun
        ),
        (
            PayoutKind::Sweep,
            25_000_000,
            Some(ADDRESS_0),
            Some(13_028_500)
        )
    );

    env.confirm().await;
    env.sweep().await;
    let s = sweep_of(&env.get("inv-1"));
    assert_eq!(s.status, SweepStatus::Swept, "{s:?}");
    assert_eq!(s.energy_fee_sun, 13_028_500);
    assert_eq!(s.cost_sun(), 14_128_500);
    assert_eq!(
        s.sweep_txid,
        env.payout("inv-1#sweep1")
            .unwrap()
            .current()
            .map(|a| a.txid.clone())
    );
    assert_eq!(env.token(&collection()), U256::from(25_000_000u32));
    assert_eq!(env.token(&deposit), U256::ZERO);
    assert_eq!(
        env.trx(&deposit),
        0,
        "exactly the energy: nothing left behind"
    );
    assert_eq!(
        env.trx(&address_of(&gas_key())),
        u128::from(GAS_START_SUN - 13_028_500 - 1_100_000)
    );
    // The signer was asked with the right key and index each time.
    let calls = env.signer.calls();
    assert_eq!(
        calls,
        vec![
            Call {
                payout_id: "shop/inv-1#gas1".into(),
                key: address_of(&gas_key()).to_base58(),
                deposit_index: Some(0)
            },
            Call {
                payout_id: "shop/inv-1#sweep1".into(),
                key: ADDRESS_0.into(),
                deposit_index: Some(0)
            },
        ]
    );
    // Shown on the invoice, announced once, never as a merchant payout.
    let view = env.get("inv-1").view();
    assert_eq!(view["sweep"]["status"], "swept");
    assert_eq!(view["sweep"]["cost_sun"], "14128500");
    assert_eq!(view["sweep"]["swept_units"], "25000000");
    let events = env.events();
    assert_eq!(
        events.iter().filter(|k| *k == "invoice.swept").count(),
        1,
        "{events:?}"
    );
    assert!(
        !events.iter().any(|k| k.starts_with("payout.")),
        "{events:?}"
    );
    assert!(env
        .p()
        .pipeline
        .store()
        .list(Some(TENANT), None, 100)
        .unwrap()
        .is_empty());
    assert_eq!(
        env.p()
            .pipeline
            .store()
            .list_all(Some(TENANT), None, 100)
            .unwrap()
            .len(),
        2
    );
    // Nothing left to sweep: the invoice leaves the work list, no new round.
    env.sweep().await;
    assert!(env.p().receive.sweep_due().unwrap().is_empty());
    assert_eq!(env.get("inv-1").sweeps.len(), 1);
}

#[tokio::test]
async fn trx_already_at_the_address_lowers_the_top_up_and_a_margin_raises_the_budget() {
    let env = env(10).await;
    let inv = env.invoice("inv-2", 20_000_000);
    env.watch().await;
    // The customer also sent 5 TRX (recorded, not counted toward a USDT invoice).
    env.pay(&inv.address, 20_000_000, "USDT");
    env.pay(&inv.address, 5_000_000, "TRX");
    env.produce(1 + SOLID_AFTER);
    env.watch().await;
    assert_eq!(env.get("inv-2").status, InvoiceStatus::Paid);
    env.sweep().await;
    let s = sweep_of(&env.get("inv-2"));
    // 130,285 × 100 × 1.10 = 14,331,350; the address holds 5,000,000 of it.
    assert_eq!((s.fee_limit_sun, s.topup_sun), (14_331_350, 9_331_350));
    env.confirm().await;
    env.sweep().await;
    // The account existed (the TRX payment created it): no creation fee.
    assert_eq!(sweep_of(&env.get("inv-2")).topup_fee_sun, 0);
    env.confirm().await;
    env.sweep().await;
    let s = sweep_of(&env.get("inv-2"));
    assert_eq!(s.status, SweepStatus::Swept);
    // The margin is left at the address for its next sweep.
    let deposit: Address = inv.address.parse().unwrap();
    assert_eq!(env.trx(&deposit), 14_331_350 - 13_028_500);
    assert_eq!(env.token(&collection()), U256::from(20_000_000u32));
}

#[tokio::test]
async fn a_restart_between_top_up_and_sweep_does_not_top_up_twice() {
    let mut env = env(0).await;
    env.paid("inv-3", 15_000_000).await;
    env.sweep().await;
    env.tick().await; // the top-up is broadcast
    env.restart();
    env.produce(1 + SOLID_AFTER);
    env.tick().await;
    env.sweep().await;
    env.restart();
    // Planned again from scratch it would top up once more; it must find its round.
    env.sweep().await;
    env.confirm().await;
    env.sweep().await;
    let s = sweep_of(&env.get("inv-3"));
    assert_eq!(s.status, SweepStatus::Swept, "{s:?}");
    let txs: Vec<Value> = env.node.app.with_chain(|c| {
        c.included()
            .iter()
            .filter(|t| !t.signature.is_empty())
            .map(|t| json!({"txid": hex::encode(t.txid)}))
            .collect()
    });
    assert_eq!(txs.len(), 2, "one top-up, one sweep: {txs:?}");
    let gas_calls = env
        .signer
        .calls()
        .iter()
        .filter(|c| c.payout_id.ends_with("#gas1"))
        .count();
    assert_eq!(gas_calls, 1);
    assert_eq!(env.token(&collection()), U256::from(15_000_000u32));
}

#[tokio::test]
async fn a_signer_refusal_stops_the_sweep_with_its_reason_and_is_not_retried() {
    let env = env(0).await;
    env.paid("inv-4", 12_000_000).await;
    env.signer.refuse.lock().unwrap().push("#sweep1".into());
    env.sweep().await;
    env.confirm().await;
    env.sweep().await;
    env.tick().await; // the signer refuses the sweep
    env.sweep().await;
    let s = sweep_of(&env.get("inv-4"));
    assert_eq!(s.status, SweepStatus::Refused);
    assert_eq!(
        s.reason.as_ref().map(|r| r.code.as_str()),
        Some("destination_not_allowed")
    );
    assert_eq!(s.sweep_txid, None);
    assert_eq!(
        env.get("inv-4").view()["sweep"]["reason"]["code"],
        "destination_not_allowed"
    );
    assert!(env.events().iter().any(|k| k == "invoice.sweep_failed"));
    // Passes after that ask nothing more.
    let asked = env.signer.calls().len();
    for _ in 0..3 {
        env.sweep().await;
        env.tick().await;
    }
    assert_eq!(env.signer.calls().len(), asked);
    assert!(env.p().receive.sweep_due().unwrap().is_empty());
    assert_eq!(env.token(&collection()), U256::ZERO);
}

#[tokio::test]
async fn a_price_rise_after_planning_fails_out_of_energy_and_is_recorded() {
    let env = env(0).await;
    env.paid("inv-5", 30_000_000).await;
    env.sweep().await;
    env.confirm().await;
    // The energy price doubles after the top-up was sized: the sweep's fee limit buys
    // half the energy it needs.
    env.node.app.with_chain(|c| c.params_mut().energy_fee = 200);
    env.sweep().await;
    env.confirm().await;
    env.sweep().await;
    let s = sweep_of(&env.get("inv-5"));
    assert_eq!(s.status, SweepStatus::Failed, "{s:?}");
    assert_eq!(
        s.reason.as_ref().map(|r| r.code.as_str()),
        Some("OUT_OF_ENERGY")
    );
    // What it burnt is the whole fee limit, and the tokens stayed.
    assert_eq!(s.energy_fee_sun, 13_028_500);
    let deposit: Address = env.get("inv-5").address.parse().unwrap();
    assert_eq!(env.token(&deposit), U256::from(30_000_000u32));
    env.sweep().await;
    assert_eq!(env.get("inv-5").sweeps.len(), 1, "not retried by itself");
}

#[tokio::test]
async fn below_the_minimum_nothing_is_swept() {
    let env = env(0).await;
    env.paid("inv-6", 9_999_999).await;
    assert_eq!(env.p().receive.sweep_due().unwrap().len(), 1);
    env.sweep().await;
    assert!(env.get("inv-6").sweeps.is_empty());
    assert!(env.payout("inv-6#gas1").is_none());
    assert!(env.p().receive.sweep_due().unwrap().is_empty());
    // A later payment to the closed invoice's address brings it over: swept then.
    let inv = env.get("inv-6");
    env.pay(&inv.address, 1, "USDT");
    env.produce(1 + SOLID_AFTER);
    env.watch().await;
    env.sweep().await;
    assert_eq!(sweep_of(&env.get("inv-6")).units, 10_000_000);
}

#[tokio::test]
async fn a_crash_after_the_top_up_was_asked_but_before_it_was_recorded_adopts_it() {
    let env = env(0).await;
    let inv = env.paid("inv-7", 11_000_000).await;
    // As if an earlier run created the round's top-up payout (of another amount: the
    // price was different then) and died before recording the round.
    let mut earlier = tron_broadcaster::model::Payout::new(
        &tron_broadcaster::model::Owner {
            tenant: TENANT.into(),
            key_id: "sweeper".into(),
        },
        "inv-7#gas1".into(),
        Asset::Trx,
        inv.address.clone(),
        14_000_000,
        1,
    );
    earlier.kind = PayoutKind::Gas;
    earlier.from = Some(address_of(&gas_key()).to_base58());
    earlier.deposit_index = Some(inv.deposit_index);
    env.p().pipeline.store().create_payout(earlier).unwrap();
    env.sweep().await;
    let s = sweep_of(&env.get("inv-7"));
    assert_eq!(
        s.topup_sun, 14_000_000,
        "the stored top-up, not a second one"
    );
    env.confirm().await;
    env.sweep().await;
    env.confirm().await;
    env.sweep().await;
    let s = sweep_of(&env.get("inv-7"));
    assert_eq!(s.status, SweepStatus::Swept);
    let gas_txs = env.node.app.with_chain(|c| {
        c.included()
            .iter()
            .filter(|t| !t.signature.is_empty())
            .count()
    });
    assert_eq!(gas_txs, 2, "one top-up and one sweep");
    let deposit: Address = inv.address.parse().unwrap();
    assert_eq!(env.trx(&deposit), 14_000_000 - 13_028_500);
}

#[tokio::test]
async fn a_trx_invoice_is_swept_whole_without_a_top_up() {
    let env = env(0).await;
    let inv = env.invoice_in("inv-8", 3_000_000, Asset::Trx);
    env.watch().await;
    env.pay(&inv.address, 3_000_000, "TRX");
    env.produce(1 + SOLID_AFTER);
    env.watch().await;
    assert_eq!(env.get("inv-8").status, InvoiceStatus::Paid);
    env.sweep().await;
    let s = sweep_of(&env.get("inv-8"));
    assert_eq!(
        (s.status, s.units, s.topup_sun, s.fee_limit_sun),
        (SweepStatus::Sweeping, 3_000_000, 0, 0)
    );
    assert!(env.payout("inv-8#gas1").is_none());
    env.confirm().await;
    env.sweep().await;
    let s = sweep_of(&env.get("inv-8"));
    assert_eq!(s.status, SweepStatus::Swept, "{s:?}");
    assert_eq!(
        s.cost_sun(),
        0,
        "free bandwidth, an existing collection account"
    );
    assert_eq!(env.trx(&collection()), 3_000_000);
    let deposit: Address = inv.address.parse().unwrap();
    assert_eq!(env.trx(&deposit), 0);
    let call = env.signer.calls().pop().unwrap();
    assert_eq!(
        (call.key.as_str(), call.deposit_index),
        (ADDRESS_0, Some(0))
    );
}
