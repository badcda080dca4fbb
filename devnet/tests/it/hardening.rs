//! Hardening: batch shapes that must not halt the publisher, and floods that must not lock
//! legitimate clients out. Real processes on loopback: the fixture processor, and the
//! `bcfl-devnet` binary where the REST answer matters.

use std::time::Duration;

use bcfl_devnet::view::{BatchStatusKind, SubmitError};
use bcfl_testkit::Devnet;
use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::batch::BatchList;

use crate::fixture::*;

const LONG: Duration = Duration::from_secs(30);

fn batch_list(batches: Vec<sawtooth_sdk::messages::batch::Batch>) -> Vec<u8> {
    let mut list = BatchList::new();
    list.set_batches(RepeatedField::from_vec(batches));
    list.write_to_bytes().unwrap()
}

/// The issue's reproduction: a batch with no transactions was answered 202 and from then on
/// every batch stayed PENDING. A validator refuses it at submission: 400, code 30.
#[test]
fn a_batch_without_transactions_is_refused_with_code_30_and_blocks_keep_coming() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::start(dir.path(), &[]);
    let _tp = fixture_tp(devnet.component(), "sdk");
    let rest = devnet.rest_addr().to_owned();
    let signer = Signer::new();

    let empty = signer.batch(Vec::new());
    let (code, body) = http(
        &rest,
        "POST",
        "/batches",
        "application/octet-stream",
        &batch_list(vec![empty.clone()]),
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((code, &json["error"]["code"]), (400, &30.into()), "{json}");
    assert_eq!(json["error"]["title"], "Submitted Batches Invalid");

    let good = signer.script(&format!("set {} after-empty", addr(1)));
    let (code, _) = http(
        &rest,
        "POST",
        "/batches",
        "application/octet-stream",
        &batch_list(vec![good.clone()]),
    )
    .unwrap();
    assert_eq!(code, 202);
    let query = format!("/batch_statuses?id={}&wait=20", good.get_header_signature());
    let (_, body) = http(&rest, "GET", &query, "application/json", b"").unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["data"][0]["status"], "COMMITTED", "{json}");
}

/// Every shape of batch that cannot run is refused, dropped, rejected or left pending on its
/// own, and a block is never left unfinished: with one batch per block (where a batch that is
/// skipped used to take the whole block's budget) a good batch submitted after all of them
/// still commits.
#[test]
fn no_batch_shape_leaves_a_block_unfinished() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = embedded(dir.path(), |c| c.max_batches_per_block = 1);
    let ledger = devnet.ledger();
    let _tp = fixture_tp(devnet.component_endpoint(), "sdk");
    let signer = Signer::new();

    // Refused at submission (code 30): no transactions; a transaction that depends on itself
    // or on a later transaction of its batch (it can never run); duplicate transaction ids.
    let lone = signer.txn(&format!("set {} x", addr(2)), None, &[]);
    // A transaction id is the signature of its header, so a transaction cannot name itself: a
    // dependency on a later transaction of the same batch is the shape that can never run.
    let ahead = signer.txn("noop", None, &[lone.get_header_signature().to_owned()]);
    let forward_dep = signer.batch(vec![ahead, lone.clone()]);
    let duplicate = signer.batch(vec![lone.clone(), lone.clone()]);
    for (name, bad) in [
        ("empty", signer.batch(Vec::new())),
        ("forward dependency", forward_dep),
        ("duplicate transaction", duplicate),
    ] {
        let err = ledger.submit_batches(vec![bad]).unwrap_err();
        assert!(
            matches!(err, SubmitError::InvalidBatch(_)),
            "{name}: {err:?}"
        );
    }

    // Accepted, and each ends on its own: every transaction rejected (INVALID); a batch that
    // depends on a transaction of that invalid batch (never runnable: stays PENDING, and used
    // to wedge the publisher); the same transaction in two batches (the second is dropped);
    // a family no processor serves (PENDING).
    let doomed_txn = signer.txn("invalid doomed", None, &[]);
    let doomed = signer.batch(vec![doomed_txn.clone()]);
    let orphan = signer.batch(vec![signer.txn(
        "noop",
        None,
        &[doomed_txn.get_header_signature().to_owned()],
    )]);
    let first_copy = signer.batch(vec![lone.clone()]);
    // (A batch id signs only the signer and the transaction ids, so the second batch needs
    // another transaction to be a different batch.)
    let second_copy = signer.batch(vec![lone, signer.txn("noop", None, &[])]);
    let unserved = signer.family_txn("nobody-serves-this", "1.0", "noop", None, &[]);
    let unserved = signer.batch(vec![unserved]);
    ledger
        .submit_batches(vec![
            doomed.clone(),
            orphan.clone(),
            first_copy.clone(),
            second_copy.clone(),
            unserved.clone(),
        ])
        .unwrap();
    wait_status(
        &ledger,
        doomed.get_header_signature(),
        BatchStatusKind::Invalid,
        LONG,
    );
    wait_status(
        &ledger,
        first_copy.get_header_signature(),
        BatchStatusKind::Committed,
        LONG,
    );

    let good = signer.script(&format!("set {} good", addr(3)));
    ledger.submit_batches(vec![good.clone()]).unwrap();
    wait_status(
        &ledger,
        good.get_header_signature(),
        BatchStatusKind::Committed,
        Duration::from_secs(10),
    );
    wait_status(
        &ledger,
        second_copy.get_header_signature(),
        BatchStatusKind::Unknown,
        LONG,
    );
    for pending in [&orphan, &unserved] {
        assert_eq!(
            ledger.batch_statuses(&[pending.get_header_signature().into()])[0].status,
            BatchStatusKind::Pending
        );
    }
}

/// The issue's flood: one key fills the pending queue with one-transaction batches of a family
/// nobody processes (they never leave it). Its share runs out; another key's batches are still
/// accepted and commit within a bound.
#[test]
fn a_flooding_key_cannot_lock_other_keys_out() {
    const CAPACITY: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let devnet = embedded(dir.path(), |c| c.max_pending_batches = CAPACITY);
    let ledger = devnet.ledger();
    let _tp = fixture_tp(devnet.component_endpoint(), "sdk");
    let flooder = Signer::new();
    let flood: Vec<_> = (0..CAPACITY)
        .map(|i| {
            flooder.batch(vec![flooder.family_txn(
                "nobody-serves-this",
                "1.0",
                &format!("flood {i}"),
                None,
                &[],
            )])
        })
        .collect();
    let mut accepted = 0;
    let mut refused = 0;
    for batch in flood {
        match ledger.submit_batches(vec![batch]) {
            Ok(()) => accepted += 1,
            Err(SubmitError::QueueFull) => refused += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(refused > 0, "the flooder filled the whole queue");
    eprintln!("flood: {accepted} accepted, {refused} refused (queue full)");

    let signer = Signer::new();
    let mut latencies = Vec::new();
    for i in 0..20 {
        let batch = signer.script(&format!("inc {}", addr(100 + i)));
        let started = std::time::Instant::now();
        ledger
            .submit_batches(vec![batch.clone()])
            .expect("another key is served during the flood");
        wait_status(
            &ledger,
            batch.get_header_signature(),
            BatchStatusKind::Committed,
            Duration::from_secs(10),
        );
        latencies.push(started.elapsed());
    }
    latencies.sort();
    eprintln!(
        "time to commit under the flood: median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
}

/// Submits a fixture transaction that writes `setting = value` where the settings processor
/// would, and waits for it to commit.
fn write_setting(
    ledger: &std::sync::Arc<dyn bcfl_devnet::view::LedgerView>,
    signer: &Signer,
    key: &str,
    value: &str,
) {
    use bcfl_devnet::ledger::settings::{encode_setting, setting_address};
    let txn = signer.txn(
        &format!(
            "sethex {} {}",
            setting_address(key),
            hex::encode(encode_setting(key, value))
        ),
        Some((&["000000"], &["000000"])),
        &[],
    );
    let batch = signer.batch(vec![txn]);
    ledger.submit_batches(vec![batch.clone()]).unwrap();
    wait_status(
        ledger,
        batch.get_header_signature(),
        BatchStatusKind::Committed,
        LONG,
    );
}

/// `sawtooth.validator.transaction_families` from devnet's genesis: other families and outputs
/// outside a family's namespaces are refused at submission (code 30).
#[test]
fn the_genesis_allow_list_refuses_other_families_at_submission() {
    use bcfl_devnet::ledger::settings::{decode_setting, setting_address, TRANSACTION_FAMILIES};
    let families = r#"[{"family": "sawtooth_settings", "version": "1.0"}, {"family": "fixture", "version": "1.0", "namespaces": ["f1f1f1"]}]"#;
    let dir = tempfile::tempdir().unwrap();
    let devnet = embedded(dir.path(), |c| {
        c.transaction_families = Some(families.to_owned());
    });
    let ledger = devnet.ledger();
    let genesis = ledger.chain_head().unwrap();
    let root = sawtooth_sdk::messages::block::BlockHeader::parse_from_bytes(genesis.get_header())
        .unwrap()
        .get_state_root_hash()
        .to_owned();
    let stored = ledger
        .state_get(&root, &setting_address(TRANSACTION_FAMILIES))
        .unwrap()
        .expect("the setting is in the genesis state");
    assert_eq!(
        decode_setting(&stored, TRANSACTION_FAMILIES).as_deref(),
        Some(families)
    );
    devnet.check_consistency().unwrap();

    let _tp = fixture_tp(devnet.component_endpoint(), "sdk");
    let signer = Signer::new();
    for refused in [
        signer.batch(vec![signer.family_txn("intkey", "1.0", "x", None, &[])]),
        signer.batch(vec![signer.family_txn("fixture", "2.0", "x", None, &[])]),
        signer.batch(vec![signer.txn("set 0a x", Some((&[NS], &["aaaa"])), &[])]),
    ] {
        let err = ledger.submit_batches(vec![refused]).unwrap_err();
        assert!(matches!(err, SubmitError::InvalidBatch(_)), "{err:?}");
    }
    let ok = signer.script(&format!("set {} allowed", addr(1)));
    ledger.submit_batches(vec![ok.clone()]).unwrap();
    wait_status(
        &ledger,
        ok.get_header_signature(),
        BatchStatusKind::Committed,
        LONG,
    );

    // Restarting with another list keeps the chain's own.
    drop(ledger);
    drop(devnet);
    let devnet = embedded(dir.path(), |c| c.transaction_families = Some("[]".into()));
    let err = devnet
        .ledger()
        .submit_batches(vec![signer.batch(vec![signer.family_txn(
            "intkey",
            "1.0",
            "x",
            None,
            &[],
        )])])
        .unwrap_err();
    assert!(matches!(err, SubmitError::InvalidBatch(_)), "{err:?}");
}

/// The list is read from the chain's state, as a validator reads it: once a transaction sets
/// it, a pending batch of a family it leaves out becomes INVALID (no message, no processor
/// needed) and new ones are refused.
#[test]
fn an_allow_list_set_on_chain_fails_pending_batches_it_leaves_out() {
    use bcfl_devnet::ledger::settings::TRANSACTION_FAMILIES;
    let dir = tempfile::tempdir().unwrap();
    let devnet = embedded(dir.path(), |_| {});
    let ledger = devnet.ledger();
    let _tp = fixture_tp(devnet.component_endpoint(), "sdk");
    let signer = Signer::new();
    let unserved = signer.batch(vec![signer.family_txn(
        "nobody-serves-this",
        "1.0",
        "x",
        None,
        &[],
    )]);
    ledger.submit_batches(vec![unserved.clone()]).unwrap();
    write_setting(
        &ledger,
        &signer,
        TRANSACTION_FAMILIES,
        r#"[{"family": "fixture", "version": "1.0"}]"#,
    );
    let status = wait_status(
        &ledger,
        unserved.get_header_signature(),
        BatchStatusKind::Invalid,
        LONG,
    );
    assert_eq!(status.invalid_transactions.len(), 1);
    assert_eq!(status.invalid_transactions[0].message, "");
    let err = ledger
        .submit_batches(vec![signer.batch(vec![signer.family_txn(
            "nobody-serves-this",
            "1.0",
            "y",
            None,
            &[],
        )])])
        .unwrap_err();
    assert!(matches!(err, SubmitError::InvalidBatch(_)), "{err:?}");
    // An empty list allows everything again.
    write_setting(&ledger, &signer, TRANSACTION_FAMILIES, "[]");
    ledger
        .submit_batches(vec![signer.batch(vec![signer.family_txn(
            "nobody-serves-this",
            "1.0",
            "z",
            None,
            &[],
        )])])
        .unwrap();
}
