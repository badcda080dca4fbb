//! The round life cycle: OPEN -> EVALUATED -> AGGREGATED -> CLOSED (OPEN -> SEALED -> EVALUATED
//! when the consortium's sketches come after the commitments).
//!
//! - `OpenRound` (admin), checked in this order: number = current round + 1 and not yet stored;
//!   the schedule fits the synchronization ([`check_schedule`]: `SYNCHRONOUS`, or `UNSET` which
//!   is stored as `SYNCHRONOUS`, takes `buffer_size = max_staleness = 0`; `BUFFERED_ASYNC` needs
//!   `1 <= buffer_size <=` [`MAX_ROUND_COMMITTERS`] and `max_staleness <=` [`MAX_STALENESS`]); no
//!   privacy guarantee is claimed (family version 1.0 supports none: the field exists so that
//!   later versions can record which applied); the previous round CLOSED; the parent model is
//!   [`initial_model`] for round 1 (the consortium's `initial_model_sha256`, else its base
//!   model), else the previous round's aggregate (or, if that round was abandoned or its
//!   aggregate CONTESTED, its parent);
//!   the aggregator an active member that the previous round's verdict did not exclude (a verdict
//!   that accepted nobody binds no aggregator); at least
//!   `min_participants` active members. The mode is `SERVERLESS` or `SERVER`: payload parsing
//!   already refuses `ROUND_MODE_UNSET` (`open_round.mode: must be set`), as it always has.
//!   When the consortium samples (`sample_ppm > 0`) the round stores the members drawn to train
//!   it ([`select_participants`]).
//! - `CommitUpdate` (active member): the round OPEN, the signer among its participants when it
//!   has any, one commitment per member, at most
//!   [`MAX_ROUND_COMMITTERS`] commitments, the sketch exactly `sketch_length` values; the base
//!   round B (the payload's 0 means the round itself) is at most the round, exists, and its
//!   staleness `N - B` is 0 in a `SYNCHRONOUS` round and at most the round's `max_staleness` in a
//!   `BUFFERED_ASYNC` one. The commitment stores B and the staleness (round B's
//!   `parent_model_sha256` names the model the update was trained from). With
//!   `sketch_after_commit` the commitment carries no sketch.
//! - `SealRound` (admin, or the round's aggregator while active; `sketch_after_commit` only):
//!   the round OPEN with the commitments `EvaluateRound` needs; draws its [`sketch_seed`] from
//!   them -> SEALED (no more commitments).
//! - `RevealSketch` (a committer; `sketch_after_commit` only): the round SEALED, the signer's
//!   commitment without a sketch yet, the sketch exactly `sketch_length` values: stored in the
//!   commitment.
//! - `EvaluateRound` (admin, or the round's aggregator while active): the round OPEN (SEALED with
//!   `sketch_after_commit`, whose committers without a revealed sketch are excluded unscored and
//!   listed as `unrevealed`, see [`unscored`]) with at least
//!   [`commitments_needed`] commitments (`commit_quorum`; in a `BUFFERED_ASYNC` round its
//!   `buffer_size`); stores the [`verdict_excluding_disputed`] result: the anomaly verdict over
//!   the committers that are not disputed, with every disputed committer added to the excluded
//!   (and listed as `disputed`) -> EVALUATED.
//! - `CommitAggregate` (the round's aggregator while active; in SERVER mode also an admin): the
//!   round EVALUATED; contributors and exclusions exactly the verdict's (the stored aggregate
//!   does not repeat them: read them from the verdict); the consortium's rule; draws the
//!   verifier committee ([`select_committee`]) -> AGGREGATED.
//! - `CloseRound`: AGGREGATED -> CLOSED by an admin or the aggregator once the aggregate is FINAL
//!   or CONTESTED; while it is PENDING only an admin may close it (recorded as
//!   `closed_unverified`); an admin may also abandon an OPEN or EVALUATED round.
//!
//! Disputes and attestations are in [`super::verification`].

use std::collections::BTreeMap;

use bcfl_protos::bcfl as pb;
use bcfl_protos::signed_bytes;
use pb::RoundPhase::{AGGREGATED, CLOSED, EVALUATED, OPEN, SEALED};
use pb::RoundSync::{BUFFERED_ASYNC, SYNCHRONOUS};
use sha2::{Digest, Sha256};

use super::evaluation::{unscored, verdict_excluding_disputed, RoundEvidence};
use super::verification::{draw, finality, select_committee};
use super::{
    attr, ensure, is_admin, reject, require_active_member, require_admin, require_consortium,
    require_round, Attributes,
};
use crate::anomaly::features::{configure, extend_after_verdict, previous_rounds};
use crate::anomaly::{reads_own_previous, stored, withdraw};
use crate::error::{Result, TxnError};
use crate::limits::{MAX_ROUND_COMMITTERS, MAX_STALENESS, PPM};
use crate::payload::{
    CloseRound, CommitAggregate, CommitUpdate, EvaluateRound, OpenRound, PublicKey, RevealSketch,
    SealRound,
};
use crate::state::{BcflState, StateError};

fn params(consortium: &pb::Consortium) -> &pb::ConsortiumParams {
    consortium.get_params()
}

/// The model round 1 starts from: `initial_model_sha256` when the consortium sets one, else
/// `base_model_sha256`.
pub fn initial_model(params: &pb::ConsortiumParams) -> &str {
    if params.initial_model_sha256.is_empty() {
        &params.base_model_sha256
    } else {
        &params.initial_model_sha256
    }
}

/// A stored round's synchronization: `ROUND_SYNC_UNSET` (never written by `OpenRound`) reads as
/// `SYNCHRONOUS`.
pub fn round_sync(round: &pb::Round) -> pb::RoundSync {
    match round.sync {
        pb::RoundSync::ROUND_SYNC_UNSET => SYNCHRONOUS,
        sync => sync,
    }
}

/// The commitments `round` needs before it can be evaluated: the round's `buffer_size` in a
/// `BUFFERED_ASYNC` round, else the consortium's `commit_quorum`.
pub fn commitments_needed(params: &pb::ConsortiumParams, round: &pb::Round) -> u32 {
    if round_sync(round) == BUFFERED_ASYNC {
        round.buffer_size
    } else {
        params.commit_quorum
    }
}

/// Checks that a round's buffer settings fit its synchronization: none in a `SYNCHRONOUS` (or
/// unset) round; in a `BUFFERED_ASYNC` round a buffer of 1..=[`MAX_ROUND_COMMITTERS`] commitments
/// and a staleness bound of at most [`MAX_STALENESS`] rounds.
pub fn check_schedule(sync: pb::RoundSync, buffer_size: u32, max_staleness: u32) -> Result<()> {
    if sync == BUFFERED_ASYNC {
        ensure!(
            (1..=MAX_ROUND_COMMITTERS).contains(&(buffer_size as usize)),
            "a BUFFERED_ASYNC round needs a buffer_size of 1..={MAX_ROUND_COMMITTERS} commitments, got {buffer_size}"
        );
        ensure!(
            max_staleness <= MAX_STALENESS,
            "a BUFFERED_ASYNC round's max_staleness must be at most {MAX_STALENESS} rounds, got {max_staleness}"
        );
    } else {
        ensure!(
            buffer_size == 0,
            "a SYNCHRONOUS round takes no buffer_size (got {buffer_size}); buffer_size and max_staleness are for BUFFERED_ASYNC rounds"
        );
        ensure!(
            max_staleness == 0,
            "a SYNCHRONOUS round takes no max_staleness (got {max_staleness}); buffer_size and max_staleness are for BUFFERED_ASYNC rounds"
        );
    }
    Ok(())
}

/// The model round `round` must start from.
fn expected_parent(
    state: &mut BcflState<'_>,
    consortium: &pb::Consortium,
    round: u64,
) -> Result<String> {
    if round == 1 {
        return Ok(initial_model(params(consortium)).to_owned());
    }
    let previous = require_round(state, round - 1)?;
    ensure!(
        previous.phase == CLOSED,
        "round {} is {:?}; close it before opening round {round}",
        round - 1,
        previous.phase
    );
    // A CONTESTED aggregate is no global model: the next round starts where this one did.
    Ok(match state.aggregate(round - 1)? {
        Some(aggregate) if aggregate.finality != pb::Finality::CONTESTED => aggregate.model_sha256,
        _ => previous.parent_model_sha256,
    })
}

/// `OpenRound`: opens the next round.
pub fn open_round(
    state: &mut BcflState<'_>,
    signer: &PublicKey,
    action: &OpenRound,
) -> Result<Attributes> {
    let mut consortium = require_consortium(state)?;
    require_admin(&consortium, signer, "open rounds")?;
    let n = action.round;
    let expected = consortium.current_round + 1;
    ensure!(n == expected, "the next round is {expected}, not {n}");
    ensure!(state.round(n)?.is_none(), "round {n} already exists");
    // Payload parsing reads an unset sync as SYNCHRONOUS; a hand-built action may not have.
    let sync = match action.sync {
        pb::RoundSync::ROUND_SYNC_UNSET => SYNCHRONOUS,
        sync => sync,
    };
    check_schedule(sync, action.buffer_size, action.max_staleness)?;
    if let Some(guarantee) = action.privacy.first() {
        return Err(reject(format!(
            "privacy guarantee {guarantee:?} is not supported by family version {} yet",
            crate::FAMILY_VERSION
        )));
    }
    let parent = expected_parent(state, &consortium, n)?;
    ensure!(
        action.parent_model_sha256.as_str() == parent,
        "round {n} must start from model {parent}, not {}",
        action.parent_model_sha256
    );
    let aggregator = action.aggregator.as_str();
    require_active_member(state, aggregator, "aggregator")?;
    if n > 1 {
        // A verdict that accepted nobody says nothing about who is trustworthy (and would leave
        // no member able to aggregate again): it binds the next aggregator only when it
        // accepted someone.
        if let Some(verdict) = state.verdict(n - 1)?.filter(|v| !v.accepted.is_empty()) {
            let excluded = verdict
                .excluded
                .binary_search_by(|k| k.as_str().cmp(aggregator))
                .is_ok();
            ensure!(
                !excluded,
                "aggregator {aggregator} was excluded by round {}'s anomaly verdict",
                n - 1
            );
        }
    }
    let active: Vec<String> = state
        .directory()?
        .into_iter()
        .filter(|m| m.status == pb::MemberStatus::ACTIVE)
        .map(|m| m.public_key)
        .collect();
    let needed = params(&consortium).min_participants as usize;
    ensure!(
        active.len() >= needed,
        "opening a round needs at least {needed} active members, there are {}",
        active.len()
    );
    let mut round = pb::Round {
        number: n,
        parent_model_sha256: parent,
        aggregator: aggregator.to_owned(),
        mode: action.mode,
        phase: OPEN,
        opened_by: signer.as_str().to_owned(),
        sync,
        buffer_size: action.buffer_size,
        max_staleness: action.max_staleness,
        privacy: action.privacy.clone(),
        ..Default::default()
    };
    round.participants = select_participants(params(&consortium), &round, active).into();
    state.put_round(&round)?;
    consortium.current_round = n;
    state.put_consortium(&consortium)?;
    let mut attributes = vec![
        attr("round", n),
        attr("aggregator", &action.aggregator),
        attr("mode", format!("{:?}", action.mode)),
        attr("sync", format!("{sync:?}")),
    ];
    if !round.participants.is_empty() {
        attributes.push(attr("participants", round.participants.join(",")));
    }
    Ok(attributes)
}

/// How many of `eligible` members a consortium that samples `sample_ppm` of them draws for a
/// round that needs `needed` commitments: `ceil(eligible * sample_ppm / 1e6)`, raised to
/// `needed` (a smaller draw could never be evaluated) and capped at `eligible`.
pub fn sample_size(eligible: usize, sample_ppm: u32, needed: usize) -> usize {
    let share = (eligible as u128 * u128::from(sample_ppm)).div_ceil(u128::from(PPM));
    usize::try_from(share)
        .unwrap_or(usize::MAX)
        .max(needed)
        .min(eligible)
}

/// The members drawn to train `round` (sorted), or none when the consortium does not sample
/// (`sample_ppm` 0: every active member may commit). The eligible are the `active` members, less
/// the aggregator in a `SERVER` round (it only aggregates); [`sample_size`] of them are
/// [`draw`]n with `seed = SHA-256("bcfl/participants" || round (8 bytes, big endian) ||
/// parent_model_sha256)`: fixed once the previous round's aggregate is, and the same on every
/// node.
pub fn select_participants(
    params: &pb::ConsortiumParams,
    round: &pb::Round,
    mut active: Vec<String>,
) -> Vec<String> {
    if params.sample_ppm == 0 {
        return Vec::new();
    }
    if round.mode == pb::RoundMode::SERVER {
        active.retain(|k| *k != round.aggregator);
    }
    active.sort();
    let size = sample_size(
        active.len(),
        params.sample_ppm,
        commitments_needed(params, round) as usize,
    );
    let mut seed = Sha256::new();
    seed.update(b"bcfl/participants");
    seed.update(round.number.to_be_bytes());
    seed.update(round.parent_model_sha256.as_bytes());
    let mut drawn = draw(&seed.finalize().into(), &active, size);
    drawn.sort();
    drawn
}

/// `CommitUpdate`: records the signer's commitment to the open round.
pub fn commit_update(
    state: &mut BcflState<'_>,
    signer: &PublicKey,
    action: &CommitUpdate,
) -> Result<Attributes> {
    let consortium = require_consortium(state)?;
    let member = require_active_member(state, signer.as_str(), "signer")?;
    ensure!(
        member.max_samples == 0 || action.num_samples <= member.max_samples,
        "{signer} may claim at most {} samples (its registered cap), got {}",
        member.max_samples,
        action.num_samples
    );
    let n = action.round;
    let mut round = require_round(state, n)?;
    ensure!(
        round.phase == OPEN,
        "round {n} is {:?}, not OPEN",
        round.phase
    );
    let position = round
        .committers
        .binary_search_by(|c| c.as_str().cmp(signer.as_str()));
    let Err(position) = position else {
        return Err(reject(format!("{signer} already committed to round {n}")));
    };
    ensure!(
        round.participants.is_empty()
            || round
                .participants
                .binary_search_by(|p| p.as_str().cmp(signer.as_str()))
                .is_ok(),
        "{signer} was not drawn to train round {n} (the consortium samples {} of its members a round)",
        round.participants.len()
    );
    ensure!(
        round.committers.len() < MAX_ROUND_COMMITTERS,
        "round {n} already holds {MAX_ROUND_COMMITTERS} commitments"
    );
    let length = params(&consortium).sketch_length as usize;
    if params(&consortium).sketch_after_commit {
        ensure!(
            action.sketch.is_empty(),
            "the consortium's sketches come after the commitments (RevealSketch once round {n} is \
             SEALED): the commitment must carry none, got {}",
            action.sketch.len()
        );
    } else {
        ensure!(
            action.sketch.len() == length,
            "the sketch must hold {length} values, got {}",
            action.sketch.len()
        );
    }
    let samples = params(&consortium).coordinate_samples as usize;
    ensure!(
        action.coordinates.len() == samples,
        "the commitment must carry {samples} sampled coordinates, got {}",
        action.coordinates.len()
    );
    // Payload parsing reads a base round of 0 as the round itself; a hand-built action may not.
    let base = match action.base_round {
        0 => n,
        base => base,
    };
    ensure!(
        base <= n,
        "base round {base} is after round {n}: an update is trained from a model that already exists"
    );
    let staleness = n - base;
    if round_sync(&round) == BUFFERED_ASYNC {
        ensure!(
            staleness <= u64::from(round.max_staleness),
            "round {n} accepts updates at most {} stale; one trained from round {base}'s model is {} stale",
            count_rounds(u64::from(round.max_staleness)),
            count_rounds(staleness)
        );
    } else {
        ensure!(
            staleness == 0,
            "round {n} is SYNCHRONOUS: the update must be trained from round {n}'s own parent model, not round {base}'s"
        );
    }
    // An update is trained from round B's parent model: B must exist (Round(B).parent_model_sha256
    // names that model, so the commitment does not repeat it).
    if base != n {
        ensure!(
            state.round(base)?.is_some(),
            "base round {base} does not exist"
        );
    }
    let commitment = pb::Commitment {
        round: n,
        member: signer.as_str().to_owned(),
        update_sha256: action.update_sha256.as_str().to_owned(),
        size_bytes: action.size_bytes,
        num_samples: action.num_samples,
        loss_micro: action.loss_micro,
        norm_micro: action.norm_micro,
        sketch: signed_bytes::from_i8(&action.sketch),
        coordinate_step_nano: action.coordinates.step_nano(),
        coordinate_steps: action.coordinates.packed_steps(),
        blob_uri: action
            .blob_uri
            .as_ref()
            .map(|u| u.as_str().to_owned())
            .unwrap_or_default(),
        base_round: base,
        // At most MAX_STALENESS in a BUFFERED_ASYNC round, 0 otherwise.
        staleness: u32::try_from(staleness).unwrap_or(u32::MAX),
        ..Default::default()
    };
    state.put_commitment(commitment)?;
    round
        .committers
        .insert(position, signer.as_str().to_owned());
    state.put_round(&round)?;
    Ok(vec![
        attr("round", n),
        attr("member", signer),
        attr("update_sha256", &action.update_sha256),
        attr("base_round", base),
    ])
}

/// `1 round`, `2 rounds`.
fn count_rounds(n: u64) -> String {
    if n == 1 {
        "1 round".to_owned()
    } else {
        format!("{n} rounds")
    }
}

/// Whether `signer` is `round`'s aggregator and an active member.
fn is_active_aggregator(
    state: &mut BcflState<'_>,
    round: &pb::Round,
    signer: &PublicKey,
) -> Result<bool> {
    if round.aggregator != signer.as_str() {
        return Ok(false);
    }
    require_active_member(state, signer.as_str(), "aggregator")?;
    Ok(true)
}

/// `EvaluateRound`: records the verdict of an open round that reached its quorum.
pub fn evaluate_round(
    state: &mut BcflState<'_>,
    signer: &PublicKey,
    action: &EvaluateRound,
) -> Result<Attributes> {
    let consortium = require_consortium(state)?;
    let n = action.round;
    let mut round = require_round(state, n)?;
    ensure!(
        is_admin(&consortium, signer) || is_active_aggregator(state, &round, signer)?,
        "only an admin or the round's aggregator may evaluate round {n}"
    );
    let sealed = params(&consortium).sketch_after_commit;
    let phase = if sealed { SEALED } else { OPEN };
    ensure!(
        round.phase == phase,
        "round {n} is {:?}, not {phase:?}{}",
        round.phase,
        if sealed {
            " (the consortium's sketches come after the commitments: SealRound first)"
        } else {
            ""
        }
    );
    require_quorum(params(&consortium), &round)?;
    // Disputed committers are excluded unscored: their statistics are known to be false, and
    // would skew the population the anomaly methods compare against; so are those that never
    // revealed their sketch.
    let all = state.commitments(n, &round.committers)?;
    let (disputed, unrevealed) = unscored(params(&consortium), &round, &all);
    let commitments: Vec<pb::Commitment> = all
        .into_iter()
        .filter(|c| {
            disputed.binary_search(&c.member).is_err()
                && unrevealed.binary_search(&c.member).is_err()
        })
        .collect();
    let scored: Vec<String> = commitments.iter().map(|c| c.member.clone()).collect();
    let links = state.links_among(&scored)?;
    // The records store what each member's consensus missed and its sum without its last
    // sketch (`stored`): restored from the consensus record, or from the archive of the round a
    // record last counts, and from the member's commitment to that round (which a method
    // comparing with the previous change reads as well).
    let mut history = state.sketch_sums(&scored)?;
    let consensus = state.consensus()?;
    let archive = stored::archive_needed(&consensus, &history.entries);
    let mut archives = BTreeMap::new();
    for r in stored::archived_rounds(&history.entries, &consensus) {
        if let Some(a) = state.consensus_archive(r)? {
            archives.insert(r, a.sum);
        }
    }
    let last = state.commitments_at(&previous_rounds(&history))?;
    history.entries = stored::restored_sums(&history.entries, &consensus, &archives, &last)
        .map_err(|missing| reject(format!("the state lacks {missing}")))?
        .into();
    history.set_consensus(consensus);
    configure(&mut history, params(&consortium).get_anomaly());
    if reads_own_previous(params(&consortium).get_anomaly()) {
        history.previous = last.into();
    }
    let mut verdict = verdict_excluding_disputed(
        &RoundEvidence {
            params: params(&consortium),
            round: &round,
            commitments: &commitments,
            links: &links,
            history: &history,
        },
        &disputed,
        &unrevealed,
    )?;
    verdict.evaluated_by = signer.as_str().to_owned();
    let anomaly = params(&consortium).get_anomaly();
    // Only a flag of a method comparing with the previous commitment can withdraw it: the
    // round before is read then alone.
    if n >= 2 && withdraw::may_withdraw(anomaly, &verdict) {
        let (verdict_before, aggregate_before) = (state.verdict(n - 1)?, state.aggregate(n - 1)?);
        let before = withdraw::RoundBefore::of(
            params(&consortium),
            &round,
            verdict_before.as_ref(),
            aggregate_before.as_ref(),
        );
        verdict.withdrawn = withdraw::withdrawn(anomaly, &verdict, &history.previous, before);
    }
    state.put_verdict(&verdict)?;
    let mut next = extend_after_verdict(
        &history,
        n,
        &commitments,
        &verdict.accepted,
        &verdict.withdrawn_members(),
    );
    if let Some(archive) = archive {
        state.put_consensus_archive(&archive)?;
    }
    state.put_consensus(next.get_consensus())?;
    // Every entry's last round is now `n`, the consensus record's, and its last sketch its
    // commitment's to this round.
    let sketches: BTreeMap<&str, Vec<i32>> = commitments
        .iter()
        .map(|c| (c.member.as_str(), c.sketch_values()))
        .collect();
    for sum in next.take_entries() {
        let last = sketches
            .get(sum.member.as_str())
            .map_or(&[][..], Vec::as_slice);
        state.put_sketch_sum(stored::stored_sum(&sum, &next.get_consensus().sum, last))?;
    }
    round.phase = EVALUATED;
    state.put_round(&round)?;
    Ok(vec![
        attr("round", n),
        attr("accepted", verdict.accepted.len()),
        attr("excluded", verdict.excluded.join(",")),
    ])
}

/// Refuses to close `round`'s commitments before it holds [`commitments_needed`] of them.
fn require_quorum(params: &pb::ConsortiumParams, round: &pb::Round) -> Result<()> {
    let needed = commitments_needed(params, round) as usize;
    let what = if round_sync(round) == BUFFERED_ASYNC {
        "buffer size"
    } else {
        "quorum"
    };
    ensure!(
        round.committers.len() >= needed,
        "round {} has {} commitments, the {what} is {needed}",
        round.number,
        round.committers.len()
    );
    Ok(())
}

/// The seed every committer of round `n` sketches with when sketches come after the
/// commitments: the first 8 bytes (little-endian) of SHA-256 over `bcfl-sketch-seed`, `n`
/// (8 bytes, big-endian) and each commitment's member key and update hash, in member order.
/// Nobody knows it before the last commitment is in, and every commitment moves it.
pub fn sketch_seed(n: u64, commitments: &[pb::Commitment]) -> u64 {
    let mut hash = Sha256::new();
    hash.update(b"bcfl-sketch-seed");
    hash.update(n.to_be_bytes());
    for c in commitments {
        hash.update(c.member.as_bytes());
        hash.update(c.update_sha256.as_bytes());
    }
    let digest: [u8; 32] = hash.finalize().into();
    u64::from_le_bytes(digest[..8].try_into().expect("8 of 32 bytes"))
}

/// `SealRound`: closes an OPEN round's commitments and draws its sketch seed, when the
/// consortium's sketches come after the commitments.
pub fn seal_round(
    state: &mut BcflState<'_>,
    signer: &PublicKey,
    action: &SealRound,
) -> Result<Attributes> {
    let consortium = require_consortium(state)?;
    let n = action.round;
    let mut round = require_round(state, n)?;
    ensure!(
        params(&consortium).sketch_after_commit,
        "the consortium's sketches come with the commitments: round {n} is evaluated without \
         being sealed"
    );
    ensure!(
        is_admin(&consortium, signer) || is_active_aggregator(state, &round, signer)?,
        "only an admin or the round's aggregator may seal round {n}"
    );
    ensure!(
        round.phase == OPEN,
        "round {n} is {:?}, not OPEN",
        round.phase
    );
    require_quorum(params(&consortium), &round)?;
    let commitments = state.commitments(n, &round.committers)?;
    round.sketch_seed = sketch_seed(n, &commitments);
    round.phase = SEALED;
    state.put_round(&round)?;
    Ok(vec![
        attr("round", n),
        attr("sketch_seed", round.sketch_seed),
    ])
}

/// `RevealSketch`: a committer of a SEALED round records the sketch of its committed change,
/// made with the round's seed (once, exactly `sketch_length` values).
pub fn reveal_sketch(
    state: &mut BcflState<'_>,
    signer: &PublicKey,
    action: &RevealSketch,
) -> Result<Attributes> {
    let consortium = require_consortium(state)?;
    let n = action.round;
    let round = require_round(state, n)?;
    ensure!(
        params(&consortium).sketch_after_commit,
        "the consortium's sketches come with the commitments: there is nothing to reveal"
    );
    ensure!(
        round.phase == SEALED,
        "round {n} is {:?}, not SEALED: sketches are revealed after SealRound, before \
         EvaluateRound",
        round.phase
    );
    let Some(mut commitment) = state.commitment(n, signer.as_str())? else {
        return Err(reject(format!("{signer} has no commitment in round {n}")));
    };
    ensure!(
        commitment.sketch.is_empty(),
        "{signer} already revealed its sketch for round {n}"
    );
    let length = params(&consortium).sketch_length as usize;
    ensure!(
        action.sketch.len() == length,
        "the sketch must hold {length} values, got {}",
        action.sketch.len()
    );
    commitment.sketch = signed_bytes::from_i8(&action.sketch);
    state.put_commitment(commitment)?;
    Ok(vec![attr("round", n), attr("member", signer)])
}

/// `CommitAggregate`: records the global model of an evaluated round.
pub fn commit_aggregate(
    state: &mut BcflState<'_>,
    signer: &PublicKey,
    action: &CommitAggregate,
) -> Result<Attributes> {
    let consortium = require_consortium(state)?;
    let n = action.round;
    let mut round = require_round(state, n)?;
    let server_admin = round.mode == pb::RoundMode::SERVER && is_admin(&consortium, signer);
    ensure!(
        server_admin || is_active_aggregator(state, &round, signer)?,
        "only the round's aggregator (or, in SERVER mode, an admin) may commit the aggregate of round {n}"
    );
    ensure!(
        round.phase == EVALUATED,
        "round {n} is {:?}, not EVALUATED",
        round.phase
    );
    let verdict = state.verdict(n)?.ok_or_else(|| {
        TxnError::State(StateError::Corrupt {
            address: crate::address::verdict_address(n),
            kind: "Verdict",
            detail: format!("round {n} is EVALUATED but has no verdict"),
        })
    })?;
    let same = |keys: &[PublicKey], stored: &[String]| {
        keys.len() == stored.len() && keys.iter().zip(stored).all(|(k, s)| k.as_str() == s)
    };
    ensure!(
        same(&action.contributors, &verdict.accepted),
        "the contributors must be exactly the verdict's accepted members ({})",
        verdict.accepted.join(",")
    );
    ensure!(
        same(&action.excluded, &verdict.excluded),
        "the excluded members must be exactly the verdict's ({})",
        verdict.excluded.join(",")
    );
    let rule = params(&consortium).aggregation_rule;
    ensure!(
        action.rule == rule,
        "the aggregation rule must be the consortium's {rule:?}, not {:?}",
        action.rule
    );
    let committee = match params(&consortium).committee_size as usize {
        0 => Vec::new(),
        size => {
            let mut candidates: Vec<String> = state
                .directory()?
                .into_iter()
                .filter(|m| {
                    m.status == pb::MemberStatus::ACTIVE
                        && m.public_key != round.aggregator
                        && m.public_key != signer.as_str()
                        && verdict.excluded.binary_search(&m.public_key).is_err()
                })
                .map(|m| m.public_key)
                .collect();
            candidates.sort();
            let commitments = state.commitments(n, &round.committers)?;
            select_committee(n, &commitments, &candidates, size)
        }
    };
    let mut aggregate = pb::Aggregate {
        round: n,
        model_sha256: action.model_sha256.as_str().to_owned(),
        rule,
        size_bytes: action.size_bytes,
        blob_uri: action
            .blob_uri
            .as_ref()
            .map(|u| u.as_str().to_owned())
            .unwrap_or_default(),
        submitted_by: signer.as_str().to_owned(),
        committee: committee.into(),
        ..Default::default()
    };
    aggregate.finality = finality(&aggregate);
    state.put_aggregate(&aggregate)?;
    round.phase = AGGREGATED;
    state.put_round(&round)?;
    Ok(vec![
        attr("round", n),
        attr("model_sha256", &action.model_sha256),
        attr("contributors", action.contributors.len()),
        attr("committee", aggregate.committee.join(",")),
    ])
}

/// `CloseRound`: closes an aggregated round, or abandons an earlier one (admin only).
pub fn close_round(
    state: &mut BcflState<'_>,
    signer: &PublicKey,
    action: &CloseRound,
) -> Result<Attributes> {
    let consortium = require_consortium(state)?;
    let n = action.round;
    let mut round = require_round(state, n)?;
    ensure!(round.phase != CLOSED, "round {n} is already CLOSED");
    let abandoned = round.phase != AGGREGATED;
    if abandoned {
        let what = format!("abandon round {n} ({:?})", round.phase);
        require_admin(&consortium, signer, &what)?;
    } else {
        let admin = is_admin(&consortium, signer);
        ensure!(
            admin || round.aggregator == signer.as_str(),
            "only an admin or the round's aggregator may close round {n}"
        );
        let aggregate = state.aggregate(n)?.ok_or_else(|| {
            TxnError::State(StateError::Corrupt {
                address: crate::address::aggregate_address(n),
                kind: "Aggregate",
                detail: format!("round {n} is AGGREGATED but has no aggregate"),
            })
        })?;
        if aggregate.finality == pb::Finality::PENDING {
            ensure!(
                admin,
                "round {n}'s aggregate awaits its verifier committee ({} of {} attested); only an admin may close it unverified",
                aggregate.attestations.len(),
                aggregate.committee.len()
            );
            round.closed_unverified = true;
        }
    }
    round.phase = CLOSED;
    state.put_round(&round)?;
    Ok(vec![attr("round", n), attr("abandoned", abandoned)])
}
