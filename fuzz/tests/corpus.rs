//! Every target's seeds and every file under `corpus/<target>/` (inputs that once failed, and
//! what fuzzing kept) run through the target again: a crash found once stays a regression test.

use std::path::Path;

#[test]
fn seeds_and_corpus_pass_every_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, target) in bcfl_fuzz::TARGETS {
        let seeds = bcfl_fuzz::seeds(name);
        assert!(!seeds.is_empty(), "{name} has no seeds");
        for seed in &seeds {
            target(seed);
        }
        let dir = root.join(name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&input));
            assert!(outcome.is_ok(), "{name}: {} fails again", path.display());
        }
    }
}

#[test]
fn the_seeds_reach_past_the_parsers() {
    // The handler's seed is a whole round: every transaction of it is accepted.
    let ledger = bcfl_fuzz::run_handler(&bcfl_fuzz::seeds("handler")[0]);
    let round = ledger.round(1).expect("round 1 opened");
    assert_eq!(
        round.phase,
        bcfl_protos::bcfl::RoundPhase::CLOSED,
        "{round:?}"
    );
    assert!(ledger.aggregate(1).is_some());
    // The batch seeds are valid batches for devnet.
    for list in bcfl_fuzz::seeds("batch") {
        let list =
            <sawtooth_sdk::messages::batch::BatchList as protobuf::Message>::parse_from_bytes(
                &list,
            )
            .unwrap();
        for batch in list.get_batches() {
            bcfl_devnet::ledger::validate::validate_batch(batch.clone()).unwrap();
        }
    }
}
