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
//!
//! A member's own `sum` holds its latest sketch, which its commitment to `last_round` holds
//! too: in a member's first round the record's sum *is* that sketch (about 290 of the record's
//! 370 bytes with 256-value sketches). The ledger stores instead `earlier_sum = sum - s`, `s` that
//! commitment's sketch, without trailing zeros (empty after a member's first round), and leaves
//! `sum` empty; readers add `s` back from the commitment, which `EvaluateRound` reads for every
//! record it extends (the one a method comparing with the previous change reads anyway). Where
//! adding it back would not give `sum` exactly (a sum that saturated), the record keeps `sum`
//! whole; a record with a `sum` is read as it is.

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

/// `earlier + last` coordinate-wise: the sum a stored `earlier_sum` and the sketch `last` of
/// the member's commitment to its `last_round` stand for.
fn with_last(earlier: &[i64], last: &[i32]) -> Vec<i64> {
    super::features::add_sketch(earlier, last)
}

/// The record `EvaluateRound` stores for `entry` (a history entry, its `consensus` and `sum`
/// whole), with `base` the consortium's consensus sum after the entry's `last_round` and `last`
/// the sketch of the member's commitment to that round: `consensus` emptied, `missed_consensus
/// = base - consensus`; `sum` emptied and `earlier_sum = sum - last`, unless adding `last` back
/// would not restore `sum` exactly (then `sum` stays whole). The entry's sum counts `last`, as
/// every entry extended with its commitment does: it is at least as long.
pub fn stored_sum(entry: &pb::SketchSum, base: &[i64], last: &[i32]) -> pb::SketchSum {
    let earlier = difference(
        &entry.sum,
        &last.iter().map(|&v| i64::from(v)).collect::<Vec<_>>(),
    );
    let (sum, earlier_sum) = if with_last(&earlier, last) == entry.sum {
        (Vec::new(), earlier)
    } else {
        (entry.sum.clone(), Vec::new())
    };
    pb::SketchSum {
        missed_consensus: difference(base, &entry.consensus),
        consensus: Vec::new(),
        sum,
        earlier_sum,
        ..entry.clone()
    }
}

/// The history entry a stored record stands for, with `base` the consortium's consensus sum
/// after the record's `last_round` and `last` the sketch of the member's commitment to that
/// round: `consensus = base - missed_consensus`, and `sum = earlier_sum + last` unless the record
/// holds its `sum` whole.
pub fn restored_sum(stored: &pb::SketchSum, base: &[i64], last: &[i32]) -> pb::SketchSum {
    let sum = if stored.sum.is_empty() {
        with_last(&stored.earlier_sum, last)
    } else {
        stored.sum.clone()
    };
    pb::SketchSum {
        consensus: difference(base, &stored.missed_consensus),
        missed_consensus: Vec::new(),
        sum,
        earlier_sum: Vec::new(),
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

/// What a record cannot be restored without.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    /// The consensus archive of this round.
    #[error("the consensus archive of round {0}, which a member's sketch sum counts")]
    Archive(u64),
    /// The member's commitment to this round, whose sketch its stored sum leaves out.
    #[error("{1}'s commitment to round {0}, whose sketch its sketch sum leaves out")]
    Commitment(u64, String),
}

/// Restores every record of `stored` against the consortium's record `consensus`, `archives`
/// (the sums after rounds, by round: those [`archived_rounds`] names) and `last` (the members'
/// commitments to their records' last rounds). The error is the first thing a record needs that
/// is missing.
pub fn restored_sums(
    stored: &[pb::SketchSum],
    consensus: &pb::ConsensusSketch,
    archives: &BTreeMap<u64, Vec<i64>>,
    last: &[pb::Commitment],
) -> Result<Vec<pb::SketchSum>, Missing> {
    let by_member: BTreeMap<(&str, u64), &pb::Commitment> = last
        .iter()
        .map(|c| ((c.member.as_str(), c.round), c))
        .collect();
    stored
        .iter()
        .map(|s| {
            let base = base_of(s, consensus, archives).ok_or(Missing::Archive(s.last_round))?;
            let sketch = if s.sum.is_empty() {
                by_member
                    .get(&(s.member.as_str(), s.last_round))
                    .ok_or_else(|| Missing::Commitment(s.last_round, s.member.clone()))?
                    .sketch_values()
            } else {
                Vec::new()
            };
            Ok(restored_sum(s, base, &sketch))
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

    /// The sketch of the member's commitment to its last round in these tests.
    const LAST: &[i32] = &[2, -3, 1];

    fn last_commitment(member: &str, round: u64) -> pb::Commitment {
        pb::Commitment {
            member: member.to_owned(),
            round,
            sketch: bcfl_protos::signed_bytes::pack(LAST).unwrap(),
            ..Default::default()
        }
    }

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
        let stored = stored_sum(&entry, &[4, -1, 2], LAST);
        assert!(stored.consensus.is_empty());
        assert!(stored.missed_consensus.is_empty());
        // The sum is stored without the last sketch, (5, -3, 7) - (2, -3, 1).
        assert!(stored.sum.is_empty());
        assert_eq!(stored.earlier_sum, vec![3, 0, 6]);
        assert_eq!(restored_sum(&stored, &[4, -1, 2], LAST), entry);
    }

    #[test]
    fn a_member_that_missed_a_round_stores_that_rounds_consensus() {
        // C after round 3 is (4, -1, 2); the member missed a round whose mean was (1, 1, 0).
        let entry = sum("a", 3, vec![3, -2, 2]);
        let stored = stored_sum(&entry, &[4, -1, 2], LAST);
        assert_eq!(stored.missed_consensus, vec![1, 1]);
        assert_eq!(restored_sum(&stored, &[4, -1, 2], LAST), entry);
        // A member whose rounds accepted nobody has no consensus, and missed all of C.
        let empty = sum("b", 3, vec![]);
        let stored = stored_sum(&empty, &[4, -1, 2], LAST);
        assert_eq!(stored.missed_consensus, vec![4, -1, 2]);
        assert_eq!(restored_sum(&stored, &[4, -1, 2], LAST), empty);
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
            stored_sum(&sum("a", 5, vec![9, 10]), &[10, 10], LAST),
            stored_sum(&sum("b", 3, vec![2, 1]), &[6, 4], LAST),
        ];
        assert_eq!(archived_rounds(&stored, &consensus), vec![3]);
        let archives = BTreeMap::from([(3, vec![6, 4]), (5, vec![0, 0])]);
        let last = [last_commitment("a", 5), last_commitment("b", 3)];
        let restored = restored_sums(&stored, &consensus, &archives, &last).unwrap();
        assert_eq!(restored[0].consensus, vec![9, 10]);
        assert_eq!(restored[1].consensus, vec![2, 1]);
        assert!(restored.iter().all(|r| r.sum == vec![5, -3, 7]));
        assert_eq!(
            restored_sums(&stored, &consensus, &BTreeMap::new(), &last),
            Err(Missing::Archive(3))
        );
        // The sum leaves out the sketch of the commitment to the record's last round.
        assert_eq!(
            restored_sums(&stored, &consensus, &archives, &last[..1]),
            Err(Missing::Commitment(3, "b".to_owned()))
        );
        let wrong_round = [last_commitment("a", 5), last_commitment("b", 4)];
        assert_eq!(
            restored_sums(&stored, &consensus, &archives, &wrong_round),
            Err(Missing::Commitment(3, "b".to_owned()))
        );
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

    #[test]
    fn a_members_first_round_stores_no_sum() {
        let first = pb::SketchSum {
            rounds: 1,
            sum: vec![2, -3, 1],
            ..sum("a", 1, vec![])
        };
        let stored = stored_sum(&first, &[], LAST);
        assert!(stored.sum.is_empty() && stored.earlier_sum.is_empty());
        assert_eq!(restored_sum(&stored, &[], LAST), first);
    }

    #[test]
    fn a_sum_that_adding_back_would_not_restore_is_kept_whole() {
        // A sum clipped at i64's range: MIN - 2 saturates at MIN, and MIN + 2 is not MIN.
        let saturated = pb::SketchSum {
            sum: vec![i64::MIN, 0, 1],
            ..sum("a", 1, vec![])
        };
        let stored = stored_sum(&saturated, &[], LAST);
        assert_eq!(stored.sum, saturated.sum);
        assert!(stored.earlier_sum.is_empty());
        assert_eq!(restored_sum(&stored, &[], LAST), saturated);
        // A sum shorter than the last sketch (one that does not count it): kept whole too.
        let short = pb::SketchSum {
            sum: vec![7],
            ..sum("a", 1, vec![])
        };
        let stored = stored_sum(&short, &[], LAST);
        assert_eq!(stored.sum, vec![7]);
        assert_eq!(restored_sum(&stored, &[], LAST), short);
        // A record stored whole (before `earlier_sum`) is read as it is.
        let whole = sum("a", 1, vec![]);
        assert_eq!(restored_sum(&whole, &[], LAST), whole);
    }

    proptest! {
        /// Restoring gives back any history entry whose sum is at least as long as the last
        /// sketch (as one that counts it is), whatever its values, and the stored sum is never
        /// longer than the whole one.
        #[test]
        fn restoring_inverts_storing_the_sum(
            (total, last) in (0..8usize).prop_flat_map(|n| (
                prop::collection::vec(any::<i64>(), n..=8),
                prop::collection::vec(-128i32..128, 0..=n),
            )),
        ) {
            let entry = pb::SketchSum { sum: total, ..sum("a", 1, vec![]) };
            let stored = stored_sum(&entry, &[], &last);
            prop_assert!(stored.sum.is_empty() || stored.earlier_sum.is_empty());
            prop_assert!(stored.sum.len() + stored.earlier_sum.len() <= entry.sum.len());
            prop_assert_eq!(restored_sum(&stored, &[], &last), entry);
        }

        /// Restoring gives back any history entry whose consensus has no trailing zeros, whatever
        /// the base.
        #[test]
        fn restoring_inverts_storing(
            consensus in prop::collection::vec(-5_000i64..5_000, 0..8),
            base in prop::collection::vec(-5_000i64..5_000, 0..8),
        ) {
            let entry = sum("a", 1, trimmed(consensus));
            let stored = stored_sum(&entry, &base, LAST);
            prop_assert!(stored.consensus.is_empty());
            prop_assert_eq!(restored_sum(&stored, &base, LAST), entry);
        }
    }
}
