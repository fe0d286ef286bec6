//! Payouts that need approval: `awaiting_approval`, the approval API, one new approval
//! shown to the signer at a time, void approvals set aside, a rejection final, and a
//! transaction that expires while waiting rebuilt with its approvals void. The signer
//! here is the double (it says `approval_required` when told to); the real signer's
//! verification is in the workspace's end-to-end test.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::{json, Value};
use tower::ServiceExt;
use tron_broadcaster::api::{router_with, ApiState};
use tron_broadcaster::apikeys::KeyStore;
use tron_broadcaster::approval_api::{self, MAX_APPROVALS};
use tron_broadcaster::model::{ApprovalProgress, Asset, Status};

const NEEDS_TWO: &str = "still needed: 2 of \"treasury\"";
const NEEDS_ONE: &str = "approved so far by \"alice\"; still needed: 1 of \"treasury\"";

/// A fake armored signature: the broadcaster checks the shape only.
fn sig(who: &str) -> String {
    format!("-----BEGIN SSH SIGNATURE-----\nU1NIU0lH{who}\n-----END SSH SIGNATURE-----\n")
}

struct Api {
    app: axum::Router,
    key: String,
    other_tenant_key: String,
}

fn api(h: &Harness) -> Api {
    let keys = Arc::new(KeyStore::new(h.dir.path().join("keys.json")));
    let key = keys.create(TENANT, "backend").unwrap().to_string();
    let other_tenant_key = keys.create("other", "backend").unwrap().to_string();
    let store = h.pipeline.store().clone();
    let app = router_with(
        ApiState {
            store: store.clone(),
            keys,
            owner: address_of(&test_key()),
        },
        approval_api::routes(store),
    );
    Api {
        app,
        key,
        other_tenant_key,
    }
}

impl Api {
    async fn call(&self, method: &str, uri: &str, key: &str, body: &str) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn submit(&self, id: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            "POST",
            &format!("/v1/payouts/{id}/approvals"),
            &self.key,
            &body.to_string(),
        )
        .await
    }

    async fn approve(&self, id: &str, txid: &str, signature: &str) -> (StatusCode, Value) {
        self.submit(id, json!({"txid": txid, "signature": signature}))
            .await
    }

    async fn pending(&self) -> Vec<Value> {
        let (s, v) = self.call("GET", "/v1/approvals", &self.key, "").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["approvals"].as_array().unwrap().clone()
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn needs(h: &Harness, message: &'static str) {
    let s = h.signer.as_ref().unwrap();
    s.st()
        .refuse
        .push_back((tonic::Code::PermissionDenied, "approval_required", message));
}

fn refuse(h: &Harness, reason: &'static str) {
    let s = h.signer.as_ref().unwrap();
    s.st().refuse.push_back((
        tonic::Code::PermissionDenied,
        reason,
        "refused by the double",
    ));
}

fn signer_calls(h: &Harness) -> Vec<Vec<String>> {
    h.signer.as_ref().unwrap().st().approvals.clone()
}

/// A payout the signer answered `approval_required` for; returns its txid.
async fn waiting(h: &Harness, id: &str) -> String {
    h.signer.as_ref().unwrap().st().statement = "statement of the double".into();
    needs(h, NEEDS_TWO);
    h.add(id, Asset::Trx, 50_000_000);
    let r = h.pipeline.tick().await;
    assert!(r.errors.is_empty(), "{r:?}");
    let p = h.get(id);
    assert_eq!(p.status, Status::AwaitingApproval);
    p.attempts[0].txid.clone()
}

#[tokio::test]
async fn approvals_reach_the_signer_one_new_at_a_time_until_it_signs() {
    let h = Harness::new(true, None).await;
    let a = api(&h);
    let txid = waiting(&h, "p1").await;
    let p = h.get("p1");
    let st = p.attempts[0].approval.clone().expect("approval state");
    assert_eq!(
        st.statement,
        format!("statement of the double\ntxid: {txid}\n")
    );
    assert_eq!(st.needed, NEEDS_TWO);
    assert_eq!(h.statuses("p1"), ["queued", "signing", "awaiting_approval"]);

    // Nothing new: the signer is not asked again, nothing is broadcast.
    h.pipeline.tick().await;
    assert_eq!(signer_calls(&h).len(), 1);
    assert!(h.node.st().received.is_empty());

    // What an approver needs is listed: raw bytes, the signer's payout id, the statement.
    let listed = a.pending().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["payout_id"], "p1");
    assert_eq!(listed[0]["signer_payout_id"], scoped("p1"));
    assert_eq!(listed[0]["txid"], txid.as_str());
    assert_eq!(listed[0]["raw_data"], p.attempts[0].raw_data.as_str());
    assert_eq!(listed[0]["statement"], st.statement.as_str());
    assert_eq!(listed[0]["needed"], NEEDS_TWO);
    // Another tenant sees nothing of it.
    let (s, v) = a
        .call("GET", "/v1/approvals", &a.other_tenant_key, "")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["approvals"], json!([]));

    // First alice alone; the signer wants one more.
    let (s, v) = a.approve("p1", &txid, &sig("alice")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    needs(&h, NEEDS_ONE);
    h.pipeline.tick().await;
    assert_eq!(signer_calls(&h)[1], [sig("alice").trim()]);
    let p = h.get("p1");
    assert_eq!(p.status, Status::AwaitingApproval);
    let st = p.attempts[0].approval.clone().unwrap();
    assert_eq!(st.needed, NEEDS_ONE);
    assert_eq!(st.approvals[0].state, ApprovalProgress::Accepted);

    // The same signature again is taken once.
    let (s, v) = a.approve("p1", &txid, &sig("alice")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["approval"]["approvals"].as_array().unwrap().len(), 1);
    // Two arrive before the next pass: each is shown to the signer in turn.
    let (s, v) = a.approve("p1", &txid, &sig("mallory")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let (s, v) = a.approve("p1", &txid, &sig("bob")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    refuse(&h, "approval_by_initiator");

    // Then alice and bob: signed and broadcast in the same pass.
    h.pipeline.tick().await;
    assert_eq!(
        signer_calls(&h)[2],
        [sig("alice").trim(), sig("mallory").trim()]
    );
    assert_eq!(
        signer_calls(&h)[3],
        [sig("alice").trim(), sig("bob").trim()]
    );
    let st = h.get("p1").attempts[0].approval.clone().unwrap();
    let states: Vec<ApprovalProgress> = st.approvals.iter().map(|c| c.state).collect();
    assert_eq!(
        states,
        [
            ApprovalProgress::Accepted,
            ApprovalProgress::Refused,
            ApprovalProgress::Accepted
        ]
    );
    let p = h.get("p1");
    assert_eq!(p.status, Status::Broadcast);
    assert_eq!(
        h.statuses("p1"),
        [
            "queued",
            "signing",
            "awaiting_approval",
            "signing",
            "broadcast"
        ]
    );
    assert_eq!(h.node.st().received.len(), 1);
    assert!(a.pending().await.is_empty());
    // A late approval has nothing to wait for.
    let (s, v) = a.approve("p1", &txid, &sig("carol")).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(code(&v), "payout_not_awaiting_approval");
}

#[tokio::test]
async fn a_void_approval_is_set_aside_and_a_rejection_is_final() {
    let h = Harness::new(true, None).await;
    let a = api(&h);
    let txid = waiting(&h, "p2").await;
    for void in [
        "approval_by_initiator",
        "approver_not_in_group",
        "approval_invalid",
    ] {
        let (s, _) = a.approve("p2", &txid, &sig(void)).await;
        assert_eq!(s, StatusCode::ACCEPTED);
        refuse(&h, void);
        h.pipeline.tick().await;
        let p = h.get("p2");
        assert_eq!(p.status, Status::AwaitingApproval, "{void}");
        let last = p.attempts[0]
            .approval
            .clone()
            .unwrap()
            .approvals
            .pop()
            .unwrap();
        assert_eq!(last.state, ApprovalProgress::Refused);
        assert_eq!(last.refusal.unwrap().code, void);
    }
    // Refused approvals are not shown to the signer again.
    let (s, _) = a.approve("p2", &txid, &sig("reject")).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    refuse(&h, "approval_rejected");
    h.pipeline.tick().await;
    assert_eq!(signer_calls(&h).last().unwrap(), &[sig("reject").trim()]);
    let p = h.get("p2");
    assert_eq!(p.status, Status::Denied);
    assert_eq!(p.denial.unwrap().code, "approval_rejected");
    let listed = a.pending().await;
    assert!(listed.is_empty());
}

#[tokio::test]
async fn a_transaction_expiring_while_waiting_is_rebuilt_and_its_approvals_are_void() {
    let h = Harness::new(true, None).await;
    let a = api(&h);
    let old = waiting(&h, "p3").await;
    let (s, _) = a.approve("p3", &old, &sig("alice")).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    needs(&h, NEEDS_ONE);
    h.pipeline.tick().await;

    // Past the expiration (600 s) by the node's clock, before the quorum.
    h.node.advance(600_000);
    needs(&h, NEEDS_TWO);
    h.pipeline.tick().await;
    let p = h.get("p3");
    assert_eq!(p.status, Status::AwaitingApproval);
    assert_eq!(p.attempts.len(), 2);
    let new = p.attempts[1].txid.clone();
    assert_ne!(new, old);
    let st = p.attempts[1].approval.clone().unwrap();
    assert!(st.approvals.is_empty(), "{st:?}");
    assert!(st.statement.contains(&new));
    assert!(
        p.history
            .iter()
            .any(|t| t.note.contains("expired awaiting approval")),
        "{:?}",
        p.history
    );
    // The rebuilt transaction was asked about with no approvals at all.
    assert!(signer_calls(&h).last().unwrap().is_empty());

    // The old txid's approvals are void, and the API says why.
    let (s, v) = a.approve("p3", &old, &sig("bob")).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(code(&v), "approval_txid_superseded");
    assert!(
        v["error"]["message"].as_str().unwrap().contains(&new),
        "{v}"
    );
    let listed = a.pending().await;
    assert_eq!(listed[0]["txid"], new.as_str());
    assert_eq!(listed[0]["superseded_txids"], json!([old]));
    let (s, _) = a.approve("p3", &new, &sig("bob")).await;
    assert_eq!(s, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn malformed_approvals_are_refused_with_their_codes() {
    let h = Harness::new(true, None).await;
    let a = api(&h);
    let txid = waiting(&h, "p4").await;
    h.add("queued-only", Asset::Trx, 1);
    let long = "A".repeat(4097);
    let armored_long =
        format!("-----BEGIN SSH SIGNATURE-----\n{long}\n-----END SSH SIGNATURE-----");
    let other_txid = "ab".repeat(32);
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "p4",
            json!({"txid": "xyz", "signature": sig("a")}),
            StatusCode::BAD_REQUEST,
            "invalid_txid",
        ),
        (
            "p4",
            json!({"txid": txid.to_uppercase(), "signature": sig("a")}),
            StatusCode::BAD_REQUEST,
            "invalid_txid",
        ),
        (
            "p4",
            json!({"txid": txid, "signature": "approved!"}),
            StatusCode::BAD_REQUEST,
            "invalid_approval_signature",
        ),
        (
            "p4",
            json!({"txid": txid, "signature": armored_long}),
            StatusCode::BAD_REQUEST,
            "invalid_approval_signature",
        ),
        (
            "p4",
            json!({"txid": txid, "signature": sig("a"), "statement": long}),
            StatusCode::BAD_REQUEST,
            "invalid_approval_statement",
        ),
        (
            "p4",
            json!({"txid": txid, "signature": sig("a"), "statement": format!("txid: {other_txid}\n")}),
            StatusCode::BAD_REQUEST,
            "invalid_approval_statement",
        ),
        (
            "p4",
            json!({"txid": other_txid, "signature": sig("a")}),
            StatusCode::BAD_REQUEST,
            "approval_txid_unknown",
        ),
        (
            "p4",
            json!({"txid": txid, "signature": sig("a"), "extra": 1}),
            StatusCode::BAD_REQUEST,
            "unknown_field",
        ),
        (
            "p4",
            json!({"signature": sig("a")}),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            "nope",
            json!({"txid": txid, "signature": sig("a")}),
            StatusCode::NOT_FOUND,
            "payout_not_found",
        ),
        (
            "bad id",
            json!({"txid": txid, "signature": sig("a")}),
            StatusCode::BAD_REQUEST,
            "invalid_payout_id",
        ),
        (
            "queued-only",
            json!({"txid": txid, "signature": sig("a")}),
            StatusCode::CONFLICT,
            "payout_not_awaiting_approval",
        ),
    ];
    for (id, body, want_status, want) in cases {
        let id = id.replace(' ', "%20");
        let (s, v) = a.submit(&id, body.clone()).await;
        assert_eq!((s, code(&v)), (want_status, want), "{body}: {v}");
    }
    let (s, v) = a
        .call("POST", "/v1/payouts/p4/approvals", &a.key, "{not json")
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_json"));
    // Another tenant's payout is not found, exactly like a missing one.
    let body = json!({"txid": txid, "signature": sig("a")}).to_string();
    let (s, v) = a
        .call(
            "POST",
            "/v1/payouts/p4/approvals",
            &a.other_tenant_key,
            &body,
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "payout_not_found"));
    // No key, no entry.
    let (s, v) = a.call("GET", "/v1/approvals", "", "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    // At most MAX_APPROVALS per transaction.
    for i in 0..MAX_APPROVALS {
        let (s, v) = a.approve("p4", &txid, &sig(&format!("n{i}"))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    }
    let (s, v) = a.approve("p4", &txid, &sig("one too many")).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "too_many_approvals"));
    // Nothing refused was kept.
    let st = h.get("p4").attempts[0].approval.clone().unwrap();
    assert_eq!(st.approvals.len(), MAX_APPROVALS);
}

#[tokio::test]
async fn a_new_statement_from_the_signer_voids_the_approvals_so_far() {
    let h = Harness::new(true, None).await;
    let a = api(&h);
    let txid = waiting(&h, "p5").await;
    let (s, _) = a.approve("p5", &txid, &sig("alice")).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    needs(&h, NEEDS_ONE);
    h.pipeline.tick().await;
    // The signer's policy changed: it now asks approvers to sign another text.
    h.signer.as_ref().unwrap().st().statement = "statement under the reloaded policy".into();
    let (s, _) = a.approve("p5", &txid, &sig("bob")).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    needs(&h, NEEDS_TWO);
    h.pipeline.tick().await;
    let p = h.get("p5");
    assert_eq!(p.status, Status::AwaitingApproval);
    let st = p.attempts[0].approval.clone().unwrap();
    assert!(st
        .statement
        .starts_with("statement under the reloaded policy"));
    assert_eq!(st.needed, NEEDS_TWO);
    for c in &st.approvals {
        assert_eq!(c.state, ApprovalProgress::Refused);
        assert_eq!(
            c.refusal.as_ref().unwrap().code,
            "approval_statement_changed"
        );
    }
    // Nothing refused is shown to the signer again.
    let calls = signer_calls(&h).len();
    h.pipeline.tick().await;
    assert_eq!(signer_calls(&h).len(), calls);
    assert_eq!(a.pending().await[0]["statement"], st.statement.as_str());
}
