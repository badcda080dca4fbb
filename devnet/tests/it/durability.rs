//! Crash durability: `kill -9` the devnet binary under load, restart, and check that every batch
//! reported COMMITTED is still committed and that the head's state agrees with its blocks.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bcfl_devnet::view::BatchStatusKind;
use bcfl_testkit::Devnet;
use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::batch::BatchList;
use sawtooth_sdk::messages::block::BlockHeader;

use crate::fixture::*;

const TXNS_PER_BATCH: usize = 5;

/// Submits batches of counter increments until `stop`, recording the ids REST reports COMMITTED.
fn load(rest: String, stop: Arc<AtomicBool>, committed: Arc<Mutex<Vec<String>>>) {
    let signer = Signer::new();
    let mut outstanding: Vec<String> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let txns = (0..TXNS_PER_BATCH)
            .map(|_| signer.txn(&format!("inc {}", addr(0)), None, &[]))
            .collect();
        let batch = signer.batch(txns);
        let mut list = BatchList::new();
        list.set_batches(RepeatedField::from_vec(vec![batch.clone()]));
        let body = list.write_to_bytes().unwrap();
        if let Ok((202, _)) = http(&rest, "POST", "/batches", "application/octet-stream", &body) {
            outstanding.push(batch.get_header_signature().to_string());
        }
        if outstanding.is_empty() {
            continue;
        }
        let query = format!("/batch_statuses?id={}", outstanding.join(","));
        let Ok((200, body)) = http(&rest, "GET", &query, "application/json", b"") else {
            continue;
        };
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
            continue;
        };
        let done: HashSet<String> = json["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["status"] == "COMMITTED")
            .filter_map(|s| s["id"].as_str().map(str::to_string))
            .collect();
        committed.lock().unwrap().extend(done.iter().cloned());
        outstanding.retain(|id| !done.contains(id));
    }
}

#[test]
fn kill_9_under_load_loses_nothing_reported_committed() {
    let dir = tempfile::tempdir().unwrap();
    // Let some blocks commit, then kill at a random moment.
    let committed = one_kill(dir.path(), 3, 700);

    // The restarted binary serves the chain, and stops cleanly on SIGTERM.
    let mut restarted = Devnet::start(dir.path(), &[]);
    let probe = format!("/batch_statuses?id={}", committed[0]);
    let (code, body) = http(
        restarted.rest_addr(),
        "GET",
        &probe,
        "application/json",
        b"",
    )
    .unwrap();
    assert_eq!(code, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["data"][0]["status"], "COMMITTED");
    assert!(
        restarted
            .process()
            .terminate(Duration::from_secs(30))
            .success(),
        "devnet did not exit 0 on SIGTERM"
    );

    check_chain(restarted.data_dir(), &committed);
}

/// Opens the stored chain in `data_dir` directly and checks it: the store is consistent, every
/// batch of `committed` is COMMITTED, blocks link up to the head, and the head's counter equals
/// the transactions of all blocks (each increments it once).
fn check_chain(data_dir: &std::path::Path, committed: &[String]) {
    let devnet = embedded(data_dir, |_| {});
    devnet.check_consistency().unwrap();
    let ledger = devnet.ledger();
    let statuses = ledger.batch_statuses(committed);
    assert!(
        statuses
            .iter()
            .all(|s| s.status == BatchStatusKind::Committed),
        "a COMMITTED batch was lost"
    );
    let head = BlockHeader::parse_from_bytes(ledger.chain_head().unwrap().get_header()).unwrap();
    let mut txns = 0;
    let mut parent = String::new();
    for num in 0..=head.get_block_num() {
        let block = ledger
            .block_by_num(num)
            .unwrap()
            .expect("every block up to the head is stored");
        let header = BlockHeader::parse_from_bytes(block.get_header()).unwrap();
        if num > 0 {
            assert_eq!(header.get_previous_block_id(), parent);
        }
        parent = block.get_header_signature().to_string();
        txns += block
            .get_batches()
            .iter()
            .map(|b| b.get_transactions().len())
            .sum::<usize>();
    }
    let counter = ledger
        .state_get(head.get_state_root_hash(), &addr(0))
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(counter).unwrap(),
        txns.to_string(),
        "head state disagrees with its blocks"
    );
    assert!(txns >= committed.len() * TXNS_PER_BATCH);
}

/// Runs [`load`] against a fresh start of the devnet in `dir` until `min_committed` batches
/// commit, waits a random moment (up to `max_wait_ms`), kills it with SIGKILL (and reaps it)
/// and returns what REST reported COMMITTED meanwhile.
fn one_kill(dir: &std::path::Path, min_committed: usize, max_wait_ms: u64) -> Vec<String> {
    let mut devnet = Devnet::start(dir, &["--block-interval-ms", "5"]);
    let _tp = fixture_tp(devnet.component(), "sdk");
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(Mutex::new(Vec::new()));
    let submitter = {
        let (rest, stop, committed) = (
            devnet.rest_addr().to_owned(),
            Arc::clone(&stop),
            Arc::clone(&committed),
        );
        std::thread::spawn(move || load(rest, stop, committed))
    };
    let start = Instant::now();
    while committed.lock().unwrap().len() < min_committed {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nothing committed under load"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(rand::random::<u64>() % max_wait_ms));
    devnet.process().assert_running();
    devnet.process().kill();
    stop.store(true, Ordering::Relaxed);
    submitter.join().unwrap();
    let committed = committed.lock().unwrap().clone();
    committed
}

/// SIGKILL at random moments under load, again and again on one chain (`BCFL_KILL_TRIALS`,
/// default 100): after every restart each batch ever reported COMMITTED is still committed, and
/// the state agrees with the blocks.
#[test]
fn a_hundred_kills_under_load_lose_nothing_reported_committed() {
    let trials: usize = std::env::var("BCFL_KILL_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut committed = Vec::new();
    for _ in 0..trials {
        committed.extend(one_kill(dir.path(), 1, 200));
    }
    check_chain(&dir.path().join("ledger"), &committed);
    eprintln!(
        "{trials} kills in {:.1} s, {} batches reported COMMITTED, none lost",
        started.elapsed().as_secs_f64(),
        committed.len()
    );
}
