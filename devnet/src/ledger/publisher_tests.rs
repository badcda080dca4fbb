//! Tests of [`BlockBuild`]: known cases of parallel dispatch, and a property test that any
//! window, any order of answers and any retries give exactly the block of serial execution.

use std::collections::HashSet;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use proptest::prelude::*;
use sawtooth_sdk::messages::batch::Batch;
use sawtooth_sdk::messages::transaction::TransactionHeader;
use sha2::{Digest, Sha256};

use super::publisher::{BlockBuild, HeadCache, NextTxn, TxnOutcome};
use super::store::BlockStore;
use super::validate::{QueuedBatch, QueuedTxn};

/// Addresses of the test ledger: `a0`..`a7`; `a` declares all of them (a prefix).
const ADDRESSES: usize = 8;

#[derive(Debug, Clone)]
struct TxnSpec {
    id: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    reads: Vec<String>,
    writes: Vec<String>,
    deps: Vec<String>,
}

fn header(spec: &TxnSpec) -> TransactionHeader {
    let mut header = TransactionHeader::new();
    header.set_family_name("test".into());
    header.set_family_version("1.0".into());
    header.set_inputs(spec.inputs.clone().into());
    header.set_outputs(spec.outputs.clone().into());
    header.set_dependencies(spec.deps.clone().into());
    header
}

fn batch(id: &str, txns: &[TxnSpec]) -> Arc<QueuedBatch> {
    Arc::new(QueuedBatch {
        id: id.to_owned(),
        signer: String::new(),
        batch: Batch::new(),
        txns: txns
            .iter()
            .map(|t| QueuedTxn {
                id: t.id.clone(),
                header: header(t),
            })
            .collect(),
        families: vec![("test".into(), "1.0".into())],
        failures: AtomicU32::new(0),
    })
}

fn store() -> (tempfile::TempDir, BlockStore) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(redb::Database::create(dir.path().join("s.redb")).unwrap());
    (dir, BlockStore::new(db).unwrap())
}

/// The test family: a transaction reads `reads`, is invalid when the hash of what it read (and
/// its id) is divisible by 5, and otherwise writes that hash to each of `writes`.
fn execute(
    build: &mut BlockBuild,
    spec: &TxnSpec,
    context_id: &str,
    store: &BlockStore,
    cache: &mut HeadCache,
) -> TxnOutcome {
    let mut hasher = Sha256::new();
    hasher.update(spec.id.as_bytes());
    for address in &spec.reads {
        hasher.update(address.as_bytes());
        hasher.update(
            build
                .read(context_id, address, store, cache)
                .unwrap_or_default(),
        );
    }
    let digest = hasher.finalize().to_vec();
    if digest[0] % 5 == 0 {
        return TxnOutcome::Invalid {
            message: format!("{} read a multiple of 5", spec.id),
            extended_data: Vec::new(),
        };
    }
    let context = build.context_mut(context_id).expect("the context is open");
    for address in &spec.writes {
        context.write(address.clone(), Some(digest.clone()));
    }
    TxnOutcome::Valid
}

/// What a finished block holds, comparable between runs.
#[derive(Debug, PartialEq)]
struct Result {
    writes: Vec<(String, Option<Vec<u8>>)>,
    accepted: Vec<String>,
    receipts: Vec<(String, usize)>,
    invalid: Vec<(String, String)>,
    dropped: Vec<String>,
}

/// Runs a block with `window`, answering in-flight transactions in the order `picks` chooses
/// (each pick indexes the in-flight list modulo its length) and failing an answer with
/// INTERNAL_ERROR whenever `fail` says so; returns the block and the largest number of
/// transactions that were in flight at once.
fn run(
    batches: &[(String, Vec<TxnSpec>)],
    window: usize,
    picks: &[usize],
    fail: &[bool],
) -> (Result, usize) {
    run_limited(batches, window, 0, picks, fail)
}

/// [`run`] with at most `max_batches` batches admitted (0: unlimited).
fn run_limited(
    batches: &[(String, Vec<TxnSpec>)],
    window: usize,
    max_batches: usize,
    picks: &[usize],
    fail: &[bool],
) -> (Result, usize) {
    let (_dir, store) = store();
    let mut cache = HeadCache::default();
    let queued: Vec<Arc<QueuedBatch>> = batches.iter().map(|(id, t)| batch(id, t)).collect();
    let specs: Vec<Vec<TxnSpec>> = batches.iter().map(|(_, t)| t.clone()).collect();
    let mut build = BlockBuild::new(
        queued.clone(),
        1_000,
        window,
        max_batches,
        Vec::new(),
        Arc::new(HashSet::new()),
    );
    let mut running: Vec<(String, usize, usize)> = Vec::new();
    let mut most = 0;
    let mut step = 0;
    'block: loop {
        loop {
            match build.next_txn(&store) {
                NextTxn::Run(b, index, context_id) => {
                    let position = queued.iter().position(|q| q.id == b.id).unwrap();
                    running.push((context_id, position, index));
                }
                NextTxn::Wait => break,
                NextTxn::Done => break 'block,
            }
        }
        most = most.max(running.len());
        assert!(
            !running.is_empty(),
            "the block waits with nothing in flight"
        );
        let pick = picks.get(step).copied().unwrap_or(0) % running.len();
        let failed = fail.get(step).copied().unwrap_or(false);
        step += 1;
        let (context_id, position, index) = running.swap_remove(pick);
        if build.context(&context_id).is_none() {
            // Its batch was decided meanwhile (invalid): the processor's answer is ignored.
            build.finish_txn(&context_id, TxnOutcome::Valid);
            continue;
        }
        let outcome = if failed {
            TxnOutcome::Failed {
                reason: "injected".into(),
            }
        } else {
            let spec = &specs[position][index];
            execute(&mut build, spec, &context_id, &store, &mut cache)
        };
        build.finish_txn(&context_id, outcome);
    }
    // Batches are reported invalid as soon as that is certain, so in any order.
    let mut invalid: Vec<(String, String)> = build
        .invalid
        .iter()
        .map(|(id, info)| (id.clone(), info[0].message.clone()))
        .collect();
    invalid.sort();
    let dropped = build.dropped.clone();
    let executed = build.finish();
    let result = Result {
        writes: executed.writes.into_iter().collect(),
        accepted: executed.accepted.iter().map(|b| b.id.clone()).collect(),
        receipts: executed
            .receipts
            .iter()
            .map(|r| {
                (
                    r.get_transaction_id().to_owned(),
                    r.get_state_changes().len(),
                )
            })
            .collect(),
        invalid,
        dropped,
    };
    (result, most)
}

fn addr(i: usize) -> String {
    format!("a{i}")
}

fn spec(id: &str, reads: &[usize], writes: &[usize]) -> TxnSpec {
    TxnSpec {
        id: id.to_owned(),
        inputs: reads.iter().chain(writes).map(|&i| addr(i)).collect(),
        outputs: writes.iter().map(|&i| addr(i)).collect(),
        reads: reads.iter().map(|&i| addr(i)).collect(),
        writes: writes.iter().map(|&i| addr(i)).collect(),
        deps: Vec::new(),
    }
}

#[test]
fn independent_batches_run_together_and_conflicting_ones_wait() {
    let independent: Vec<(String, Vec<TxnSpec>)> = (0..4)
        .map(|i| (format!("b{i}"), vec![spec(&format!("t{i}"), &[i], &[i])]))
        .collect();
    let (serial, one) = run(&independent, 1, &[], &[]);
    let (parallel, most) = run(&independent, 8, &[3, 2, 1, 0], &[]);
    assert_eq!(one, 1);
    assert_eq!(
        most, 4,
        "four independent transactions are in flight at once"
    );
    assert_eq!(parallel, serial);
    assert_eq!(parallel.accepted.len() + parallel.invalid.len(), 4);

    // Every transaction writes a0: each waits for the one before it.
    let chain: Vec<(String, Vec<TxnSpec>)> = (0..4)
        .map(|i| (format!("b{i}"), vec![spec(&format!("t{i}"), &[0], &[0])]))
        .collect();
    let (serial, _) = run(&chain, 1, &[], &[]);
    let (parallel, most) = run(&chain, 8, &[], &[]);
    assert_eq!(most, 1);
    assert_eq!(parallel, serial);
}

#[test]
fn a_prefix_declaration_conflicts_with_every_address_under_it() {
    let mut wide = spec("wide", &[], &[]);
    wide.inputs = vec!["a".into()];
    wide.outputs = vec!["a".into()];
    wide.reads = vec![addr(3)];
    wide.writes = vec![addr(5)];
    let batches = vec![
        ("b0".to_owned(), vec![spec("t0", &[1], &[1])]),
        ("b1".to_owned(), vec![wide]),
        ("b2".to_owned(), vec![spec("t2", &[2], &[2])]),
    ];
    let (serial, _) = run(&batches, 1, &[], &[]);
    let (parallel, most) = run(&batches, 8, &[1, 1, 1], &[]);
    // b0 runs alone; b1 covers everything so it runs alone; b2 must wait behind b1 as well.
    assert_eq!(most, 1);
    assert_eq!(parallel, serial);
}

#[test]
fn an_invalid_batch_leaves_independent_later_batches_valid_and_in_order() {
    // Find an id whose first read makes it invalid, to put it first.
    let bad = (0..100)
        .map(|n| spec(&format!("bad{n}"), &[0], &[0]))
        .find(|s| {
            let (r, _) = run(&[("x".into(), vec![s.clone()])], 1, &[], &[]);
            !r.invalid.is_empty()
        })
        .expect("some id hashes to a multiple of 5");
    let batches = vec![
        ("b0".to_owned(), vec![spec("ok0", &[1], &[1]), bad]),
        ("b1".to_owned(), vec![spec("ok1", &[2], &[2])]),
        ("b2".to_owned(), vec![spec("ok2", &[3], &[3])]),
    ];
    let (serial, _) = run(&batches, 1, &[], &[]);
    // Answer the later batches first.
    let (parallel, _) = run(&batches, 8, &[2, 1, 0, 0], &[]);
    assert_eq!(parallel, serial);
    assert_eq!(parallel.invalid.len(), 1);
    assert_eq!(parallel.invalid[0].0, "b0");
    assert!(!parallel.accepted.contains(&"b0".to_owned()));
}

#[test]
fn a_batch_without_transactions_is_dropped_and_the_block_finishes() {
    let batches = vec![
        ("empty".to_owned(), Vec::new()),
        ("b1".to_owned(), vec![spec("t1", &[1], &[1])]),
    ];
    for window in [1, 8] {
        let (result, _) = run(&batches, window, &[], &[]);
        assert_eq!(result.dropped, ["empty"]);
        // b1 was decided (the test family makes some transactions invalid).
        assert_eq!(result.accepted.len() + result.invalid.len(), 1);
        assert!(!result.accepted.contains(&"empty".to_owned()));
    }
}

#[test]
fn batches_left_pending_take_no_place_in_a_limited_block() {
    let mut orphan = spec("orphan", &[1], &[1]);
    orphan.deps = vec!["never-seen".into()];
    let batches = vec![
        ("orphan".to_owned(), vec![orphan]),
        ("b1".to_owned(), vec![spec("t1", &[2], &[2])]),
        ("b2".to_owned(), vec![spec("t2", &[3], &[3])]),
    ];
    let decided = |r: &Result| {
        let mut ids = r.accepted.clone();
        ids.extend(r.invalid.iter().map(|(id, _)| id.clone()));
        ids.sort();
        ids
    };
    let (result, _) = run_limited(&batches, 8, 1, &[], &[]);
    assert_eq!(
        decided(&result),
        ["b1"],
        "the orphan must not use the only place"
    );
    let (result, _) = run_limited(&batches, 8, 0, &[], &[]);
    assert_eq!(decided(&result), ["b1", "b2"]);
}

fn arb_txn(id: String) -> impl Strategy<Value = TxnSpec> {
    (
        prop::collection::vec(0..ADDRESSES, 0..3),
        prop::collection::vec(0..ADDRESSES, 0..3),
        prop::bool::weighted(0.1),
    )
        .prop_map(move |(reads, writes, wide)| {
            let mut t = spec(&id, &reads, &writes);
            if wide {
                // Declares the whole namespace by its prefix.
                t.inputs = vec!["a".into()];
                t.outputs = vec!["a".into()];
            }
            t
        })
}

fn arb_block() -> impl Strategy<Value = Vec<(String, Vec<TxnSpec>)>> {
    prop::collection::vec(1usize..4, 1..8).prop_flat_map(|sizes| {
        let batches: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(b, &n)| {
                let txns: Vec<_> = (0..n).map(|t| arb_txn(format!("t{b}.{t}"))).collect();
                (Just(format!("b{b}")), txns)
            })
            .collect();
        batches
    })
}

/// Adds dependencies and duplicate ids so that admission (`Wait`, `Skip`, `Drop`) is exercised.
fn with_links(
    mut block: Vec<(String, Vec<TxnSpec>)>,
    links: &[(usize, usize, u8)],
) -> Vec<(String, Vec<TxnSpec>)> {
    for &(later, earlier, kind) in links {
        let (later, earlier) = (later % block.len(), earlier % block.len());
        if earlier >= later {
            continue;
        }
        let earlier_id = block[earlier].1[0].id.clone();
        let txn = &mut block[later].1[0];
        match kind % 3 {
            0 => txn.deps.push(earlier_id),
            1 => txn.deps.push("missing".into()),
            _ => txn.id = earlier_id,
        }
    }
    block
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_window_and_answer_order_gives_the_serial_block(
        block in arb_block(),
        links in prop::collection::vec((0usize..8, 0usize..8, 0u8..3), 0..3),
        window in 2usize..10,
        picks in prop::collection::vec(0usize..16, 64),
        fail in prop::collection::vec(prop::bool::weighted(0.15), 64),
    ) {
        let block = with_links(block, &links);
        let (serial, _) = run(&block, 1, &[], &[]);
        let (parallel, _) = run(&block, window, &picks, &fail);
        prop_assert_eq!(parallel, serial);
    }
}
