//! Integration tests of `bcfl-devnet`, in one test binary: the devnet ledger core with real
//! processes on loopback.
//!
//! Most tests embed the ledger (`Devnet::start`) and drive it through its `LedgerView`, with the
//! fixture processor (a real `sawtooth_sdk` processor, or raw ZMQ misbehaviour) as a child
//! process; `fixture.rs` holds the signer, the processor and the embedded ledger they share. The
//! durability tests run the `bcfl-devnet` binary (through `bcfl-testkit`) and talk to its REST
//! API.
//!
//! ```text
//! cargo test -p bcfl-devnet --test it
//! ```

mod durability;
mod fixture;
mod hardening;

use std::time::Duration;

use bcfl_devnet::view::{BatchStatusKind, SubmitError};
use fixture::*;
use protobuf::Message as _;
use sawtooth_sdk::messages::block::BlockHeader;
use sawtooth_sdk::messages::transaction_receipt::StateChange_Type;

const LONG: Duration = Duration::from_secs(30);

#[test]
fn submission_checks_reject_bad_batches_and_bound_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = embedded(dir.path(), |c| c.max_pending_batches = 2);
    let ledger = devnet.ledger();
    let signer = Signer::new();

    let good = signer.script("set 00 x");
    let mut bad_payload = good.clone();
    bad_payload.mut_transactions()[0].set_payload(b"tampered".to_vec());
    let mut bad_sig = good.clone();
    bad_sig.set_header_signature("00".repeat(64));
    let mut wrong_batcher = signer.batch(vec![Signer::new().txn("set 00 x", None, &[])]);
    wrong_batcher.mut_transactions()[0].clear_payload();
    let mut empty_dep = signer.batch(vec![signer.txn("x", None, &[String::new()])]);
    empty_dep.set_trace(false);

    for bad in [bad_payload, bad_sig, wrong_batcher, empty_dep] {
        let err = ledger.submit_batches(vec![good.clone(), bad]).unwrap_err();
        assert!(matches!(err, SubmitError::InvalidBatch(_)), "{err:?}");
    }
    // All or nothing: the good batch of the refused requests was not queued.
    assert_eq!(
        ledger.batch_statuses(&[good.get_header_signature().into()])[0].status,
        BatchStatusKind::Unknown
    );

    // No processor: the batch stays PENDING; re-submitting it is accepted and ignored.
    ledger.submit_batches(vec![good.clone()]).unwrap();
    ledger.submit_batches(vec![good.clone()]).unwrap();
    assert_eq!(
        ledger.batch_statuses(&[good.get_header_signature().into()])[0].status,
        BatchStatusKind::Pending
    );
    ledger
        .submit_batches(vec![signer.script("set 01 y")])
        .unwrap();
    let full = ledger
        .submit_batches(vec![signer.script("set 02 z")])
        .unwrap_err();
    assert_eq!(full, SubmitError::QueueFull);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        ledger.batch_statuses(&[good.get_header_signature().into()])[0].status,
        BatchStatusKind::Pending
    );
    assert_eq!(
        ledger.chain_head().map(|b| b.get_header_signature().len()),
        Some(128)
    );
}

#[test]
fn pending_batch_commits_once_a_processor_registers_with_validator_roots() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = embedded(dir.path(), |_| {});
    let ledger = devnet.ledger();
    let mut commits = ledger.subscribe_commits();
    let signer = Signer::new();
    let genesis = ledger.chain_head().unwrap();
    let gh = BlockHeader::parse_from_bytes(genesis.get_header()).unwrap();
    assert_eq!(gh.get_block_num(), 0);
    assert_eq!(gh.get_previous_block_id(), "0000000000000000");
    assert_eq!(gh.get_consensus(), b"Genesis");
    assert_eq!(
        gh.get_state_root_hash(),
        "708ca7fbb701799bb387f2e50deaca402e8502abe229f705693d2d4f350e1ad6"
    );

    // Spec 4.1 vector: address 1cf126 + 64 zeros set to "hello" on the empty tree.
    let hello = format!("1cf126{}", "0".repeat(64));
    let txn = signer.txn(
        &format!("set {hello} hello;event bcfl/test v1;data receipt-blob"),
        Some((&["1cf126"], &["1cf126"])),
        &[],
    );
    let tid = txn.get_header_signature().to_string();
    let batch = signer.batch(vec![txn]);
    let id = batch.get_header_signature().to_string();
    ledger.submit_batches(vec![batch]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        ledger.batch_statuses(std::slice::from_ref(&id))[0].status,
        BatchStatusKind::Pending
    );

    let _tp = fixture_tp(devnet.component_endpoint(), "sdk");
    wait_status(&ledger, &id, BatchStatusKind::Committed, LONG);

    let head = ledger.chain_head().unwrap();
    let h = BlockHeader::parse_from_bytes(head.get_header()).unwrap();
    assert_eq!(h.get_block_num(), 1);
    assert_eq!(h.get_previous_block_id(), genesis.get_header_signature());
    assert_eq!(
        h.get_state_root_hash(),
        "7b811efe7993ea479af5910a5d6f3caba573f3aee6f48fdcdef774055bae075e"
    );
    assert!(h.get_consensus().starts_with(b"Devmode"));
    assert_eq!(h.get_consensus().len(), 7 + 32);
    assert_eq!(h.get_batch_ids(), std::slice::from_ref(&id));
    assert_eq!(
        ledger
            .state_get(h.get_state_root_hash(), &hello)
            .unwrap()
            .unwrap(),
        b"hello"
    );
    assert_eq!(
        ledger.state_get(gh.get_state_root_hash(), &hello).unwrap(),
        None
    );
    assert_eq!(ledger.block_by_num(1).unwrap().unwrap(), head);
    assert_eq!(
        ledger
            .block_by_id(head.get_header_signature())
            .unwrap()
            .unwrap(),
        head
    );
    assert_eq!(ledger.batch_by_id(&id).unwrap().unwrap().1, 1);
    assert_eq!(ledger.transaction_by_id(&tid).unwrap().unwrap().1, 1);

    let receipt = ledger.receipt(&tid).unwrap().unwrap();
    assert_eq!(receipt.get_state_changes().len(), 1);
    assert_eq!(
        receipt.get_state_changes()[0].get_field_type(),
        StateChange_Type::SET
    );
    assert_eq!(receipt.get_events()[0].get_event_type(), "bcfl/test");
    assert_eq!(receipt.get_data(), &[b"receipt-blob".to_vec()]);

    let notice = commits.try_recv().unwrap();
    assert_eq!(notice.block_num, 1);
    assert_eq!(notice.block_id, head.get_header_signature());
    assert_eq!(notice.state_changes[0].get_address(), hello);
}

#[test]
fn invalid_batches_are_dropped_with_their_message_and_layers_are_visible() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = embedded(dir.path(), |_| {});
    let ledger = devnet.ledger();
    let _tp = fixture_tp(devnet.component_endpoint(), "sdk");
    let signer = Signer::new();
    let (a, b) = (addr(1), addr(2));
    // Warm up: wait for the processor to register.
    let warm = signer.script(&format!("set {} w", addr(9)));
    ledger.submit_batches(vec![warm.clone()]).unwrap();
    wait_status(
        &ledger,
        warm.get_header_signature(),
        BatchStatusKind::Committed,
        LONG,
    );

    let first = signer.batch(vec![
        signer.txn(&format!("set {a} one"), None, &[]),
        signer.txn(&format!("expect {a} one;set {b} two"), None, &[]),
    ]);
    let bad = signer.batch(vec![
        signer.txn(&format!("set {a} poisoned"), None, &[]),
        signer.txn("invalid boom", None, &[]),
    ]);
    let after = signer.script(&format!("expect {a} one;expect {b} two;del {b}"));
    let unauthorized = signer.batch(vec![signer.txn(
        &format!("set {a} nope"),
        Some((&[NS], &["aaaa"])),
        &[],
    )]);
    let ids: Vec<String> = [&first, &bad, &after, &unauthorized]
        .iter()
        .map(|b| b.get_header_signature().to_string())
        .collect();
    ledger
        .submit_batches(vec![first, bad.clone(), after, unauthorized])
        .unwrap();

    wait_status(&ledger, &ids[0], BatchStatusKind::Committed, LONG);
    wait_status(&ledger, &ids[2], BatchStatusKind::Committed, LONG);
    let invalid = wait_status(&ledger, &ids[1], BatchStatusKind::Invalid, LONG);
    assert_eq!(invalid.invalid_transactions.len(), 1);
    assert_eq!(
        invalid.invalid_transactions[0].id,
        bad.get_transactions()[1].get_header_signature()
    );
    assert_eq!(invalid.invalid_transactions[0].message, "boom");
    wait_status(&ledger, &ids[3], BatchStatusKind::Invalid, LONG);

    let root = BlockHeader::parse_from_bytes(ledger.chain_head().unwrap().get_header())
        .unwrap()
        .get_state_root_hash()
        .to_string();
    assert_eq!(ledger.state_get(&root, &a).unwrap().unwrap(), b"one");
    assert_eq!(ledger.state_get(&root, &b).unwrap(), None);
    devnet.check_consistency().unwrap();
    let listed = ledger.state_list(&root, NS, None, 10).unwrap();
    assert_eq!(
        listed.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        vec![a.clone(), addr(9)]
    );
}

#[test]
fn internal_errors_are_retried_a_bounded_number_of_times() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = embedded(dir.path(), |c| c.max_internal_retries = 2);
    let ledger = devnet.ledger();
    let _tp = fixture_tp(devnet.component_endpoint(), "sdk");
    let signer = Signer::new();
    let batch = signer.script("internal flaky backend");
    let ok = signer.script(&format!("inc {}", addr(3)));
    ledger
        .submit_batches(vec![batch.clone(), ok.clone()])
        .unwrap();
    let status = wait_status(
        &ledger,
        batch.get_header_signature(),
        BatchStatusKind::Invalid,
        LONG,
    );
    let message = &status.invalid_transactions[0].message;
    assert!(
        message.contains("failed 3 times") && message.contains("flaky backend"),
        "{message}"
    );
    wait_status(
        &ledger,
        ok.get_header_signature(),
        BatchStatusKind::Committed,
        LONG,
    );
}

#[test]
fn dependencies_hold_a_batch_until_they_are_satisfied() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = embedded(dir.path(), |_| {});
    let ledger = devnet.ledger();
    let _tp = fixture_tp(devnet.component_endpoint(), "sdk");
    let signer = Signer::new();
    let parent = signer.txn(&format!("set {} p", addr(4)), None, &[]);
    let child = signer.batch(vec![signer.txn(
        &format!("expect {} p", addr(4)),
        None,
        &[parent.get_header_signature().to_string()],
    )]);
    ledger.submit_batches(vec![child.clone()]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        ledger.batch_statuses(&[child.get_header_signature().into()])[0].status,
        BatchStatusKind::Unknown
    );
    let parent = signer.batch(vec![parent]);
    ledger.submit_batches(vec![parent.clone()]).unwrap();
    wait_status(
        &ledger,
        child.get_header_signature(),
        BatchStatusKind::Committed,
        LONG,
    );
    wait_status(
        &ledger,
        parent.get_header_signature(),
        BatchStatusKind::Committed,
        LONG,
    );
}

#[test]
fn garbage_frames_neither_crash_nor_wedge_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = embedded(dir.path(), |_| {});
    let ledger = devnet.ledger();
    let mut garbage = fixture_tp(devnet.component_endpoint(), "garbage");
    let status = garbage.wait().unwrap();
    assert!(status.success(), "garbage fixture: {status:?}");
    let mut said = String::new();
    std::io::Read::read_to_string(&mut garbage.stdout.take().unwrap(), &mut said).unwrap();
    assert_eq!(said, "protocol version 2 refused\nprobe echoed\n");
    let _tp = fixture_tp(devnet.component_endpoint(), "sdk");
    let batch = Signer::new().script(&format!("set {} ok", addr(5)));
    ledger.submit_batches(vec![batch.clone()]).unwrap();
    wait_status(
        &ledger,
        batch.get_header_signature(),
        BatchStatusKind::Committed,
        LONG,
    );
}

#[test]
fn a_processor_that_vanishes_mid_transaction_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = embedded(dir.path(), |_| {});
    let ledger = devnet.ledger();
    let mut vanish = fixture_tp(devnet.component_endpoint(), "vanish");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(vanish.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "registered");
    let signer = Signer::new();
    let batch = signer.script(&format!("inc {}", addr(6)));
    ledger.submit_batches(vec![batch.clone()]).unwrap();
    // The vanishing processor takes the transaction and exits; the batch must not be lost.
    assert!(!vanish.wait().unwrap().success());
    let _tp = fixture_tp(devnet.component_endpoint(), "sdk");
    wait_status(
        &ledger,
        batch.get_header_signature(),
        BatchStatusKind::Committed,
        LONG,
    );
    let root = BlockHeader::parse_from_bytes(ledger.chain_head().unwrap().get_header())
        .unwrap()
        .get_state_root_hash()
        .to_string();
    assert_eq!(ledger.state_get(&root, &addr(6)).unwrap().unwrap(), b"1");
}

#[test]
fn a_silent_processor_times_out_into_an_invalid_batch() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = embedded(dir.path(), |c| {
        c.processor_timeout = Duration::from_millis(300);
        c.max_internal_retries = 1;
    });
    let ledger = devnet.ledger();
    let _silent = fixture_tp(devnet.component_endpoint(), "silent");
    std::thread::sleep(Duration::from_millis(300));
    let batch = Signer::new().script("set 00 x");
    ledger.submit_batches(vec![batch.clone()]).unwrap();
    let status = wait_status(
        &ledger,
        batch.get_header_signature(),
        BatchStatusKind::Invalid,
        LONG,
    );
    assert!(status.invalid_transactions[0].message.contains("timed out"));
}

#[test]
fn the_chain_and_state_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new();
    let batch = signer.script(&format!("set {} kept", addr(7)));
    let (head, key) = {
        let devnet = embedded(dir.path(), |_| {});
        let ledger = devnet.ledger();
        let _tp = fixture_tp(devnet.component_endpoint(), "sdk");
        ledger.submit_batches(vec![batch.clone()]).unwrap();
        wait_status(
            &ledger,
            batch.get_header_signature(),
            BatchStatusKind::Committed,
            LONG,
        );
        let key = devnet.validator_public_key().to_string();
        devnet.shutdown();
        (ledger.chain_head().unwrap(), key)
    };
    let devnet = embedded(dir.path(), |_| {});
    let ledger = devnet.ledger();
    assert_eq!(devnet.validator_public_key(), key);
    assert_eq!(ledger.chain_head().unwrap(), head);
    assert_eq!(
        ledger.batch_statuses(&[batch.get_header_signature().into()])[0].status,
        BatchStatusKind::Committed
    );
    let root = BlockHeader::parse_from_bytes(head.get_header())
        .unwrap()
        .get_state_root_hash()
        .to_string();
    assert_eq!(ledger.state_get(&root, &addr(7)).unwrap().unwrap(), b"kept");
    // The chain continues from the stored head.
    let _tp = fixture_tp(devnet.component_endpoint(), "sdk");
    let next = signer.script(&format!("expect {} kept", addr(7)));
    ledger.submit_batches(vec![next.clone()]).unwrap();
    wait_status(
        &ledger,
        next.get_header_signature(),
        BatchStatusKind::Committed,
        LONG,
    );
    let h = BlockHeader::parse_from_bytes(ledger.chain_head().unwrap().get_header()).unwrap();
    assert_eq!(h.get_previous_block_id(), head.get_header_signature());
}

#[test]
fn raw_header_processors_receive_the_signed_header_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = embedded(dir.path(), |_| {});
    let ledger = devnet.ledger();
    let _raw = fixture_tp(devnet.component_endpoint(), "raw");
    let batch = Signer::new().script("anything");
    ledger.submit_batches(vec![batch.clone()]).unwrap();
    wait_status(
        &ledger,
        batch.get_header_signature(),
        BatchStatusKind::Committed,
        LONG,
    );
}

#[test]
fn silent_processors_are_pinged_every_ten_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = embedded(dir.path(), |_| {});
    let mut silent = fixture_tp(devnet.component_endpoint(), "silent");
    let stdout = silent.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            if tx.send((std::time::Instant::now(), line.unwrap())).is_err() {
                return;
            }
        }
    });
    let (registered_at, line) = rx.recv_timeout(LONG).unwrap();
    assert_eq!(line, "registered");
    let (pinged_at, line) = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(line, "pinged");
    let silence = pinged_at - registered_at;
    assert!(
        silence >= Duration::from_secs(9),
        "pinged after {silence:?}"
    );
}
