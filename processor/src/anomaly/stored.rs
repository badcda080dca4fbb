//! The sketch history as the ledger stores it.
//!
//! A member's consensus ([`pb::SketchSum`]'s `consensus`: the accepted members' mean sketches
//! summed over the evaluated rounds it committed to) is, for a member that has committed to every
//! evaluated round, the consortium's own consensus `C` ([`pb::ConsensusSketch`]'s `sum`). Kept in
//! every member's record it was the largest part of a member's first round on the ledger (about
//! 300 of 1,291 bytes a member at 1,000 members). The ledger stores instead what the member
//! missed, `missed_consensus = C(last_round) - consensus` with `C(r)` the consortium's sum after
//! evaluated round `r`: empty for those members, and the consensus of the rounds it sat out for
//! the others. Only the readers see the difference: [`restored_sum`] gives `EvaluateRound` and the
//! auditor the history the features compute with, [`stored_sum`] is what `EvaluateRound` writes.
//!
//! `C(last_round)` is the consortium's record itself while `last_round` is its last evaluated
//! round (`evaluated_round`). When a later `EvaluateRound` leaves some of that round's committers
//! out ([`archive_needed`]: fewer of them are scored than the record's `followers`), it first keeps
//! `C` as it stands in a [`pb::ConsensusArchive`] for that round, which their records are restored
//! from when they return. With every member committing every round nothing is archived; with a
//! quarter of the members drawn a round, one archive a round. An archive stays once written
//! (about 330 bytes with 256-value sketches): telling when no record counts its round any
//! more would mean reading every record.
//!
//! The features treat a missing value as 0, so a consensus is kept without trailing zeros
//! ([`trimmed`]): restoring then gives back exactly the history that was stored.

use std::collections::BTreeMap;

use bcfl_protos::bcfl as pb;

/// `values` without its trailing zeros.
pub fn trimmed(mut values: Vec<i64>) -> Vec<i64> {
    while values.last() == Some(&0) {
        values.pop();
    }
    values
}

/// `a - b` coordinate-wise, a missing value counting as 0, without trailing zeros. Sums of
/// sketches (values within 127) cannot reach `i64`'s range in fewer than 2^56 rounds; the
/// subtraction saturates all the same.
fn difference(a: &[i64], b: &[i64]) -> Vec<i64> {
    trimmed(
        (0..a.len().max(b.len()))
            .map(|k| {
                let x = a.get(k).copied().unwrap_or(0);
                x.saturating_sub(b.get(k).copied().unwrap_or(0))
            })
            .collect(),
    )
}

/// The record `EvaluateRound` stores for `entry` (a history entry, its `consensus` whole), with
/// `base` the consortium's consensus sum after the entry's `last_round`: `consensus` emptied,
/// `missed_consensus = base - consensus`.
pub fn stored_sum(entry: &pb::SketchSum, base: &[i64]) -> pb::SketchSum {
    pb::SketchSum {
        missed_consensus: difference(base, &entry.consensus),
        consensus: Vec::new(),
        ..entry.clone()
    }
}

/// The history entry a stored record stands for, with `base` the consortium's consensus sum
/// after the record's `last_round`: `consensus = base - missed_consensus`.
pub fn restored_sum(stored: &pb::SketchSum, base: &[i64]) -> pb::SketchSum {
    pb::SketchSum {
        consensus: difference(base, &stored.missed_consensus),
        missed_consensus: Vec::new(),
        ..stored.clone()
    }
}

/// The rounds whose archive restoring `stored` needs beside the consortium's record
/// `consensus`: the records' last rounds other than its `evaluated_round`, ascending.
pub fn archived_rounds(stored: &[pb::SketchSum], consensus: &pb::ConsensusSketch) -> Vec<u64> {
    let rounds: std::collections::BTreeSet<u64> = stored
        .iter()
        .map(|s| s.last_round)
        .filter(|&r| r != consensus.evaluated_round)
        .collect();
    rounds.into_iter().collect()
}

/// The consortium's consensus sum after `record`'s last round: the record `consensus` while that
/// is its last evaluated round, else the archive of that round among `archives` (`None` when
/// missing).
pub fn base_of<'a>(
    record: &pb::SketchSum,
    consensus: &'a pb::ConsensusSketch,
    archives: &'a BTreeMap<u64, Vec<i64>>,
) -> Option<&'a [i64]> {
    if record.last_round == consensus.evaluated_round {
        Some(&consensus.sum)
    } else {
        archives.get(&record.last_round).map(Vec::as_slice)
    }
}

/// Restores every record of `stored` against the consortium's record `consensus` and
/// `archives` (the sums after rounds, by round: those [`archived_rounds`] names). The error is
/// the first round a record needs whose archive is missing.
pub fn restored_sums(
    stored: &[pb::SketchSum],
    consensus: &pb::ConsensusSketch,
    archives: &BTreeMap<u64, Vec<i64>>,
) -> Result<Vec<pb::SketchSum>, u64> {
    stored
        .iter()
        .map(|s| {
            base_of(s, consensus, archives)
                .map(|base| restored_sum(s, base))
                .ok_or(s.last_round)
        })
        .collect()
}

/// The archive `EvaluateRound` must keep before it extends the records `stored` (the round's
/// scored committers' records, as read) and replaces the consortium's record `consensus`: `C`
/// after `consensus.evaluated_round`, when fewer of those records than its `followers` count
/// that round last (some member it extended is left out of this round and will need it).
pub fn archive_needed(
    consensus: &pb::ConsensusSketch,
    stored: &[pb::SketchSum],
) -> Option<pb::ConsensusArchive> {
    let round = consensus.evaluated_round;
    let returning = stored.iter().filter(|s| s.last_round == round).count();
    (round != 0 && (returning as u64) < u64::from(consensus.followers)).then(|| {
        pb::ConsensusArchive {
            round,
            sum: consensus.sum.clone(),
            ..Default::default()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sum(member: &str, last_round: u64, consensus: Vec<i64>) -> pb::SketchSum {
        pb::SketchSum {
            member: member.to_owned(),
            rounds: 2,
            sum: vec![5, -3, 7],
            last_round,
            consensus,
            ..Default::default()
        }
    }

    #[test]
    fn a_member_that_missed_nothing_stores_no_consensus() {
        let entry = sum("a", 2, vec![4, -1, 2]);
        let stored = stored_sum(&entry, &[4, -1, 2]);
        assert!(stored.consensus.is_empty());
        assert!(stored.missed_consensus.is_empty());
        assert_eq!(stored.sum, entry.sum);
        assert_eq!(restored_sum(&stored, &[4, -1, 2]), entry);
    }

    #[test]
    fn a_member_that_missed_a_round_stores_that_rounds_consensus() {
        // C after round 3 is (4, -1, 2); the member missed a round whose mean was (1, 1, 0).
        let entry = sum("a", 3, vec![3, -2, 2]);
        let stored = stored_sum(&entry, &[4, -1, 2]);
        assert_eq!(stored.missed_consensus, vec![1, 1]);
        assert_eq!(restored_sum(&stored, &[4, -1, 2]), entry);
        // A member whose rounds accepted nobody has no consensus, and missed all of C.
        let empty = sum("b", 3, vec![]);
        let stored = stored_sum(&empty, &[4, -1, 2]);
        assert_eq!(stored.missed_consensus, vec![4, -1, 2]);
        assert_eq!(restored_sum(&stored, &[4, -1, 2]), empty);
    }

    #[test]
    fn records_are_restored_from_the_record_or_their_rounds_archive() {
        let consensus = pb::ConsensusSketch {
            sum: vec![10, 10],
            evaluated_round: 5,
            followers: 1,
            ..Default::default()
        };
        let stored = vec![
            stored_sum(&sum("a", 5, vec![9, 10]), &[10, 10]),
            stored_sum(&sum("b", 3, vec![2, 1]), &[6, 4]),
        ];
        assert_eq!(archived_rounds(&stored, &consensus), vec![3]);
        let archives = BTreeMap::from([(3, vec![6, 4]), (5, vec![0, 0])]);
        let restored = restored_sums(&stored, &consensus, &archives).unwrap();
        assert_eq!(restored[0].consensus, vec![9, 10]);
        assert_eq!(restored[1].consensus, vec![2, 1]);
        assert_eq!(restored_sums(&stored, &consensus, &BTreeMap::new()), Err(3));
    }

    #[test]
    fn an_archive_is_kept_only_when_a_follower_is_left_out() {
        let consensus = pb::ConsensusSketch {
            sum: vec![3, 1],
            evaluated_round: 4,
            followers: 2,
            ..Default::default()
        };
        let both = [sum("a", 4, vec![]), sum("b", 4, vec![])];
        assert_eq!(archive_needed(&consensus, &both), None);
        // b sits this round out (a newcomer and a returning member do not stand in for it).
        let without_b = [
            sum("a", 4, vec![]),
            sum("c", 2, vec![]),
            sum("d", 0, vec![]),
        ];
        let archive = archive_needed(&consensus, &without_b).unwrap();
        assert_eq!((archive.round, archive.sum), (4, vec![3, 1]));
        // Before the first evaluated round nothing is archived.
        assert_eq!(archive_needed(&pb::ConsensusSketch::default(), &[]), None);
    }

    proptest! {
        /// Restoring gives back any history entry whose consensus has no trailing zeros, whatever
        /// the base.
        #[test]
        fn restoring_inverts_storing(
            consensus in prop::collection::vec(-5_000i64..5_000, 0..8),
            base in prop::collection::vec(-5_000i64..5_000, 0..8),
        ) {
            let entry = sum("a", 1, trimmed(consensus));
            let stored = stored_sum(&entry, &base);
            prop_assert!(stored.consensus.is_empty());
            prop_assert_eq!(restored_sum(&stored, &base), entry);
        }
    }
}
