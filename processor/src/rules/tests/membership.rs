//! Consortium creation and member registry rules.

use bcfl_protos::bcfl as pb;

use super::*;
use crate::testing::{test_key, MemoryLedger};

#[test]
fn init_only_once_and_signer_must_be_admin() {
    let admin = test_key("admin");
    let other = test_key("other");
    let mut ledger = MemoryLedger::new();
    let msg = rejected(ledger.submit(&other, &init(&[&admin])));
    assert_eq!(msg, "the signer must be one of the admin keys it names");
    let events = ledger.submit(&admin, &init(&[&admin, &other])).unwrap();
    assert_eq!(events[0].event_type, "bcfl/init_consortium");
    assert_eq!(events[0].attribute("signer"), Some(admin.as_str()));
    let consortium = ledger.consortium().unwrap();
    let mut sorted = vec![admin.clone(), other.clone()];
    sorted.sort();
    assert_eq!(consortium.admin_keys.to_vec(), sorted);
    assert_eq!(consortium.current_round, 0);
    let msg = rejected(ledger.submit(&admin, &init(&[&admin])));
    assert_eq!(msg, "the consortium is already initialized");
}

#[test]
fn init_rejects_insane_params() {
    let admin = test_key("admin");
    let mut payload = init(&[&admin]);
    payload.mut_init_consortium().mut_params().commit_quorum = 0;
    let msg = rejected(MemoryLedger::new().submit(&admin, &payload));
    assert!(
        msg.starts_with("invalid payload: params.commit_quorum"),
        "{msg}"
    );
    let payload = init(&[&admin, &admin]);
    let msg = rejected(MemoryLedger::new().submit(&admin, &payload));
    assert!(msg.contains("must not repeat a key"), "{msg}");
}

#[test]
fn actions_need_a_consortium() {
    let admin = test_key("admin");
    let msg = rejected(MemoryLedger::new().submit(&admin, &register(&test_key("x"), "x")));
    assert_eq!(msg, "the consortium is not initialized");
}

#[test]
fn only_admins_register_and_suspend() {
    let mut w = World::new();
    let m0 = w.m(0);
    let newcomer = test_key("dave");
    let msg = rejected(w.ledger.submit(&m0, &register(&newcomer, "dave")));
    assert_eq!(msg, "only an admin may register members");
    let msg = rejected(w.ledger.submit(&m0, &suspend(&w.m(1))));
    assert_eq!(msg, "only an admin may suspend members");
}

#[test]
fn register_twice_suspend_and_reinstate() {
    let mut w = World::new();
    let m1 = w.m(1);
    let msg = rejected(w.admin_submit(&register(&m1, "again")));
    assert_eq!(msg, format!("member {m1} is already registered"));
    w.admin_submit(&suspend(&m1)).unwrap();
    let member = w.ledger.member(&m1).unwrap();
    assert_eq!(member.status, pb::MemberStatus::SUSPENDED);
    assert_eq!(member.suspend_reason, "sent a poisoned update");
    let msg = rejected(w.admin_submit(&suspend(&m1)));
    assert_eq!(msg, format!("member {m1} is already suspended"));
    let statuses: Vec<_> = w.ledger.directory().iter().map(|m| m.status).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == pb::MemberStatus::SUSPENDED)
            .count(),
        1
    );
    let events = w.admin_submit(&register(&m1, "back")).unwrap();
    assert_eq!(events[0].attribute("reinstated"), Some("true"));
    let member = w.ledger.member(&m1).unwrap();
    assert_eq!(
        (member.status, member.name.as_str()),
        (pb::MemberStatus::ACTIVE, "back")
    );
    assert!(member.suspend_reason.is_empty());
    let msg = rejected(w.admin_submit(&suspend(&test_key("nobody"))));
    assert!(msg.ends_with("is not registered"), "{msg}");
}

fn update(key: &str, name: &str, endpoint: &str) -> pb::BcflPayload {
    with(|p| {
        p.set_update_member(pb::UpdateMember {
            public_key: key.into(),
            name: name.into(),
            endpoint: endpoint.into(),
            ..Default::default()
        })
    })
}

#[test]
fn update_by_admin_or_self() {
    let mut w = World::new();
    let (m0, m1) = (w.m(0), w.m(1));
    let msg = rejected(w.ledger.submit(&m0, &update(&m1, "hijack", "")));
    assert_eq!(
        msg,
        format!("only an admin or the member itself may update member {m1}")
    );
    w.ledger
        .submit(&m1, &update(&m1, "", "https://bob.example:443"))
        .unwrap();
    let member = w.ledger.member(&m1).unwrap();
    assert_eq!(
        (member.name.as_str(), member.endpoint.as_str()),
        ("member-1", "https://bob.example:443")
    );
    w.admin_submit(&update(&m1, "Bob", "")).unwrap();
    assert_eq!(w.ledger.member(&m1).unwrap().name, "Bob");
    w.admin_submit(&suspend(&m1)).unwrap();
    let msg = rejected(w.ledger.submit(&m1, &update(&m1, "me", "")));
    assert_eq!(msg, "a suspended member may not update itself");
    let msg = rejected(w.admin_submit(&update(&m1, "", "")));
    assert!(
        msg.contains("must change the name, the endpoint or the sample cap"),
        "{msg}"
    );
}

fn capped(payload: pb::BcflPayload, cap: u64) -> pb::BcflPayload {
    let mut payload = payload;
    if payload.has_register_member() {
        payload.mut_register_member().max_samples = cap;
    } else {
        payload.mut_update_member().max_samples = cap;
    }
    payload
}

fn committing(samples: u64) -> pb::BcflPayload {
    let mut payload = commit(1, "u", SKETCH);
    payload.mut_commit_update().num_samples = samples;
    payload
}

/// The sample cap: set at registration, changed by admins only, kept on reinstatement unless
/// the payload sets one, and a commitment claiming more is refused (the claim is FedAvg's
/// weight).
#[test]
fn a_commitment_may_not_claim_more_samples_than_the_members_cap() {
    let mut w = World::new();
    let (m0, m1) = (w.m(0), w.m(1));
    let newcomer = test_key("dave");
    let events = w
        .admin_submit(&capped(register(&newcomer, "dave"), 120))
        .unwrap();
    assert_eq!(events[0].attribute("max_samples"), Some("120"));
    assert_eq!(w.ledger.member(&newcomer).unwrap().max_samples, 120);
    assert_eq!(w.ledger.member(&m1).unwrap().max_samples, 0);
    w.admin_submit(&open(1, &base_model(), &m0, pb::RoundMode::SERVERLESS))
        .unwrap();
    let msg = rejected(w.ledger.submit(&newcomer, &committing(121)));
    assert_eq!(
        msg,
        format!("{newcomer} may claim at most 120 samples (its registered cap), got 121")
    );
    // A member without a cap claims what the payload bounds allow; a capped one up to its cap.
    w.ledger.submit(&m1, &committing(1_000_000)).unwrap();
    w.ledger.submit(&newcomer, &committing(120)).unwrap();

    let msg = rejected(w.ledger.submit(&m1, &capped(update(&m1, "", ""), 10)));
    assert_eq!(
        msg,
        format!("only an admin may change member {m1}'s sample cap")
    );
    w.ledger.submit(&m1, &update(&m1, "renamed", "")).unwrap();
    w.admin_submit(&capped(update(&m1, "", ""), 10)).unwrap();
    assert_eq!(w.ledger.member(&m1).unwrap().max_samples, 10);

    w.admin_submit(&suspend(&newcomer)).unwrap();
    w.admin_submit(&register(&newcomer, "back")).unwrap();
    assert_eq!(w.ledger.member(&newcomer).unwrap().max_samples, 120);
    w.admin_submit(&suspend(&newcomer)).unwrap();
    w.admin_submit(&capped(register(&newcomer, "back"), 300))
        .unwrap();
    assert_eq!(w.ledger.member(&newcomer).unwrap().max_samples, 300);

    let too_many = crate::limits::MAX_NUM_SAMPLES + 1;
    let msg = rejected(w.admin_submit(&capped(register(&test_key("eve"), "eve"), too_many)));
    assert!(
        msg.starts_with("invalid payload: register_member.max_samples"),
        "{msg}"
    );
    let msg = rejected(w.admin_submit(&capped(update(&m1, "", ""), too_many)));
    assert!(
        msg.starts_with("invalid payload: update_member.max_samples"),
        "{msg}"
    );
}

#[test]
fn payload_errors_are_invalid_transactions() {
    let mut w = World::new();
    let admin = w.admin.clone();
    let msg = rejected(w.ledger.submit_raw(&admin, &[0x0a, 0xff], vec![], vec![]));
    assert!(
        msg.starts_with("invalid payload: payload is not a valid BcflPayload"),
        "{msg}"
    );
    let msg = rejected(w.ledger.submit_raw(&admin, &[], vec![], vec![]));
    assert!(msg.contains("no known action"), "{msg}");
    let msg = rejected(w.ledger.submit_raw(
        "not-a-key",
        &close(1).write_to_bytes_checked(),
        vec![],
        vec![],
    ));
    assert!(
        msg.starts_with("invalid payload: signer_public_key"),
        "{msg}"
    );
}

#[test]
fn undeclared_addresses_are_refused() {
    let mut w = World::new();
    let admin = w.admin.clone();
    let payload = register(&test_key("dave"), "dave");
    let (inputs, outputs) = crate::access::declared_addresses(&payload, &admin).unwrap();
    let bytes = payload.write_to_bytes_checked();
    // Drop the directory from the outputs: the write must be refused.
    let outputs: Vec<String> = outputs
        .into_iter()
        .filter(|a| *a != crate::address::directory_address())
        .collect();
    let msg = rejected(w.ledger.submit_raw(&admin, &bytes, inputs.clone(), outputs));
    assert!(msg.starts_with("state access refused"), "{msg}");
    assert!(
        w.ledger.member(&test_key("dave")).is_none(),
        "a refused transaction leaves no trace"
    );
    let msg = rejected(w.ledger.submit_raw(&admin, &bytes, vec![], vec![]));
    assert!(msg.starts_with("state access refused"), "{msg}");
}

/// Serialization that cannot fail for these messages.
trait Bytes {
    fn write_to_bytes_checked(&self) -> Vec<u8>;
}

impl Bytes for pb::BcflPayload {
    fn write_to_bytes_checked(&self) -> Vec<u8> {
        protobuf::Message::write_to_bytes(self).unwrap()
    }
}

/// A member may not point other members' probes and fetches at anything but a server
/// (issue "Trust and hardening", items 4 and 12): no path, query or user info, a valid port.
#[test]
fn endpoints_name_a_server_and_nothing_more() {
    let mut w = World::new();
    let m1 = w.m(1);
    for endpoint in [
        "http://127.0.0.1:8008/batches",
        "http://127.0.0.1:7070/v1/pull?x=1",
        "http://admin:pw@10.0.0.1:80",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:0",
        "http://127.0.0.1",
    ] {
        let msg = rejected(w.ledger.submit(&m1, &update(&m1, "", endpoint)));
        assert!(
            msg.starts_with("invalid payload: update_member.endpoint: must be http://HOST:PORT"),
            "{endpoint}: {msg}"
        );
        let mut payload = register(&test_key("eve"), "eve");
        payload.mut_register_member().endpoint = endpoint.into();
        let msg = rejected(w.admin_submit(&payload));
        assert!(
            msg.starts_with("invalid payload: register_member.endpoint: must be http://HOST:PORT"),
            "{endpoint}: {msg}"
        );
    }
    assert_eq!(
        w.ledger.member(&m1).unwrap().endpoint,
        "http://127.0.0.1:7070"
    );
    w.ledger
        .submit(&m1, &update(&m1, "", "http://[::1]:7071/"))
        .unwrap();
}
