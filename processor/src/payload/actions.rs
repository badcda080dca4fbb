//! The typed actions and their conversion from and to the protobuf messages.

use bcfl_protos::bcfl as pb;
use bcfl_protos::signed_bytes;
use protobuf::RepeatedField;

use super::fields::{BlobUri, Endpoint, MemberName, PublicKey, Reason, Sha256Hash};
use super::params::validate_params;
use super::{field, invalid, reject_unknown_fields, Result};
use crate::limits::{
    MAX_ADMINS, MAX_BLOB_BYTES, MAX_BYTES_PER_SEC, MAX_COORDINATE_SAMPLES, MAX_MEASUREMENTS,
    MAX_NUM_SAMPLES, MAX_PROBE_BYTES, MAX_ROUND_COMMITTERS, MAX_RTT_US, MAX_SKETCH_LENGTH,
    MAX_STALENESS,
};
use crate::statistics::Coordinates;

/// Parses a list of keys that must not repeat, with `min..=max` entries; returns it sorted.
fn key_set(name: &'static str, keys: &[String], min: usize, max: usize) -> Result<Vec<PublicKey>> {
    if keys.len() < min || keys.len() > max {
        return Err(invalid(
            name,
            format!("must list {min}..={max} keys, got {}", keys.len()),
        ));
    }
    let mut parsed = keys
        .iter()
        .map(|k| field(name, PublicKey::parse(k)))
        .collect::<Result<Vec<_>>>()?;
    parsed.sort();
    if parsed.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid(name, "must not repeat a key".into()));
    }
    Ok(parsed)
}

fn key_strings(keys: &[PublicKey]) -> RepeatedField<String> {
    keys.iter().map(|k| k.as_str().to_owned()).collect()
}

fn round_number(name: &'static str, round: u64) -> Result<u64> {
    if round == 0 {
        Err(invalid(name, "rounds are numbered from 1".into()))
    } else {
        Ok(round)
    }
}

fn bounded(name: &'static str, value: u64, low: u64, high: u64) -> Result<u64> {
    if (low..=high).contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            name,
            format!("must be in {low}..={high}, got {value}"),
        ))
    }
}

fn at_most(name: &'static str, value: u32, high: u32) -> Result<u32> {
    if value <= high {
        Ok(value)
    } else {
        Err(invalid(name, format!("must be in 0..={high}, got {value}")))
    }
}

fn optional_uri(name: &'static str, uri: &str) -> Result<Option<BlobUri>> {
    if uri.is_empty() {
        Ok(None)
    } else {
        field(name, BlobUri::parse(uri)).map(Some)
    }
}

fn uri_string(uri: &Option<BlobUri>) -> String {
    uri.as_ref()
        .map(|u| u.as_str().to_owned())
        .unwrap_or_default()
}

/// Create the consortium: its admins and parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct InitConsortium {
    /// Admin keys, 1..=32, sorted and unique.
    pub admins: Vec<PublicKey>,
    /// Validated parameters in canonical form.
    pub params: pb::ConsortiumParams,
}

impl InitConsortium {
    pub(super) fn from_proto(m: &pb::InitConsortium) -> Result<Self> {
        reject_unknown_fields(m, "init_consortium")?;
        let admins = key_set("init_consortium.admin_keys", &m.admin_keys, 1, MAX_ADMINS)?;
        if !m.has_params() {
            return Err(invalid("init_consortium.params", "must be set".into()));
        }
        let params = validate_params(m.get_params())?;
        Ok(Self { admins, params })
    }

    pub(super) fn to_proto(&self) -> pb::InitConsortium {
        let mut m = pb::InitConsortium::new();
        m.set_admin_keys(key_strings(&self.admins));
        m.set_params(self.params.clone());
        m
    }
}

/// Register a new member, or reinstate a suspended one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterMember {
    /// The member's signing key.
    pub public_key: PublicKey,
    /// Display name.
    pub name: MemberName,
    /// Base URL of the member's blob server.
    pub endpoint: Endpoint,
    /// The most samples the member may claim in a commitment (`None`: no cap, or a reinstated
    /// member's old one).
    pub max_samples: Option<u64>,
}

/// A sample cap of a payload: 0 is none, anything else within `1..=MAX_NUM_SAMPLES`.
fn sample_cap(name: &'static str, value: u64) -> Result<Option<u64>> {
    (value != 0)
        .then(|| bounded(name, value, 1, MAX_NUM_SAMPLES))
        .transpose()
}

impl RegisterMember {
    pub(super) fn from_proto(m: &pb::RegisterMember) -> Result<Self> {
        reject_unknown_fields(m, "register_member")?;
        Ok(Self {
            public_key: field(
                "register_member.public_key",
                PublicKey::parse(&m.public_key),
            )?,
            name: field("register_member.name", MemberName::parse(&m.name))?,
            endpoint: field("register_member.endpoint", Endpoint::parse(&m.endpoint))?,
            max_samples: sample_cap("register_member.max_samples", m.max_samples)?,
        })
    }

    pub(super) fn to_proto(&self) -> pb::RegisterMember {
        pb::RegisterMember {
            public_key: self.public_key.as_str().to_owned(),
            name: self.name.as_str().to_owned(),
            endpoint: self.endpoint.as_str().to_owned(),
            max_samples: self.max_samples.unwrap_or(0),
            ..Default::default()
        }
    }
}

/// Change a member's name, endpoint and/or sample cap; an empty (or 0) field in the payload keeps
/// the old value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateMember {
    /// The member to update.
    pub public_key: PublicKey,
    /// New display name, if changed.
    pub name: Option<MemberName>,
    /// New endpoint, if changed.
    pub endpoint: Option<Endpoint>,
    /// New sample cap, if changed (admins only).
    pub max_samples: Option<u64>,
}

impl UpdateMember {
    pub(super) fn from_proto(m: &pb::UpdateMember) -> Result<Self> {
        reject_unknown_fields(m, "update_member")?;
        let public_key = field("update_member.public_key", PublicKey::parse(&m.public_key))?;
        let name = (!m.name.is_empty())
            .then(|| field("update_member.name", MemberName::parse(&m.name)))
            .transpose()?;
        let endpoint = (!m.endpoint.is_empty())
            .then(|| field("update_member.endpoint", Endpoint::parse(&m.endpoint)))
            .transpose()?;
        let max_samples = sample_cap("update_member.max_samples", m.max_samples)?;
        if name.is_none() && endpoint.is_none() && max_samples.is_none() {
            return Err(invalid(
                "update_member",
                "must change the name, the endpoint or the sample cap".into(),
            ));
        }
        Ok(Self {
            public_key,
            name,
            endpoint,
            max_samples,
        })
    }

    pub(super) fn to_proto(&self) -> pb::UpdateMember {
        pb::UpdateMember {
            public_key: self.public_key.as_str().to_owned(),
            name: self
                .name
                .as_ref()
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default(),
            endpoint: self
                .endpoint
                .as_ref()
                .map(|e| e.as_str().to_owned())
                .unwrap_or_default(),
            max_samples: self.max_samples.unwrap_or(0),
            ..Default::default()
        }
    }
}

/// Suspend a member, with a reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuspendMember {
    /// The member to suspend.
    pub public_key: PublicKey,
    /// Why (kept in the member's state for audit).
    pub reason: Reason,
}

impl SuspendMember {
    pub(super) fn from_proto(m: &pb::SuspendMember) -> Result<Self> {
        reject_unknown_fields(m, "suspend_member")?;
        Ok(Self {
            public_key: field("suspend_member.public_key", PublicKey::parse(&m.public_key))?,
            reason: field("suspend_member.reason", Reason::parse(&m.reason))?,
        })
    }

    pub(super) fn to_proto(&self) -> pb::SuspendMember {
        pb::SuspendMember {
            public_key: self.public_key.as_str().to_owned(),
            reason: self.reason.as_str().to_owned(),
            ..Default::default()
        }
    }
}

/// Open round `round`.
///
/// The payload's `sync`, `buffer_size`, `max_staleness` and `privacy` are parsed here within their
/// bounds; whether they fit together (a `SYNCHRONOUS` round has no buffer, a `BUFFERED_ASYNC` one
/// needs one) and whether family version 1.0 supports a privacy guarantee are rules
/// ([`crate::rules::rounds::open_round`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenRound {
    /// The round number (>= 1).
    pub round: u64,
    /// The global model the round fine-tunes.
    pub parent_model_sha256: Sha256Hash,
    /// The member that aggregates.
    pub aggregator: PublicKey,
    /// Topology (never `ROUND_MODE_UNSET`).
    pub mode: pb::RoundMode,
    /// When the aggregate may be formed; the payload's `ROUND_SYNC_UNSET` is read as
    /// `SYNCHRONOUS` (never unset here).
    pub sync: pb::RoundSync,
    /// `BUFFERED_ASYNC`: commitments that let the round be evaluated; 0..=256.
    pub buffer_size: u32,
    /// `BUFFERED_ASYNC`: the largest staleness (round - base round) of an update; 0..=16.
    pub max_staleness: u32,
    /// Privacy guarantees the round claims: distinct, none unset, sorted by enum value.
    pub privacy: Vec<pb::PrivacyGuarantee>,
}

/// Parses a list of privacy guarantees: no `PRIVACY_GUARANTEE_UNSET`, no repeats; sorted.
fn privacy_set(
    name: &'static str,
    list: &[pb::PrivacyGuarantee],
) -> Result<Vec<pb::PrivacyGuarantee>> {
    if list.contains(&pb::PrivacyGuarantee::PRIVACY_GUARANTEE_UNSET) {
        return Err(invalid(
            name,
            "must not contain PRIVACY_GUARANTEE_UNSET".into(),
        ));
    }
    let mut sorted = list.to_vec();
    sorted.sort_by_key(|g| *g as i32);
    sorted.dedup();
    if sorted.len() != list.len() {
        return Err(invalid(name, "must not repeat a guarantee".into()));
    }
    Ok(sorted)
}

impl OpenRound {
    pub(super) fn from_proto(m: &pb::OpenRound) -> Result<Self> {
        reject_unknown_fields(m, "open_round")?;
        if m.mode == pb::RoundMode::ROUND_MODE_UNSET {
            return Err(invalid("open_round.mode", "must be set".into()));
        }
        let sync = match m.sync {
            pb::RoundSync::ROUND_SYNC_UNSET => pb::RoundSync::SYNCHRONOUS,
            other => other,
        };
        Ok(Self {
            round: round_number("open_round.round", m.round)?,
            parent_model_sha256: field(
                "open_round.parent_model_sha256",
                Sha256Hash::parse(&m.parent_model_sha256),
            )?,
            aggregator: field("open_round.aggregator", PublicKey::parse(&m.aggregator))?,
            mode: m.mode,
            sync,
            buffer_size: at_most(
                "open_round.buffer_size",
                m.buffer_size,
                MAX_ROUND_COMMITTERS as u32,
            )?,
            max_staleness: at_most("open_round.max_staleness", m.max_staleness, MAX_STALENESS)?,
            privacy: privacy_set("open_round.privacy", &m.privacy)?,
        })
    }

    pub(super) fn to_proto(&self) -> pb::OpenRound {
        pb::OpenRound {
            round: self.round,
            parent_model_sha256: self.parent_model_sha256.as_str().to_owned(),
            aggregator: self.aggregator.as_str().to_owned(),
            mode: self.mode,
            sync: self.sync,
            buffer_size: self.buffer_size,
            max_staleness: self.max_staleness,
            privacy: self.privacy.clone(),
            ..Default::default()
        }
    }
}

/// Refuses a list `field` of more than `max` values.
fn at_most_values(field: &'static str, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(invalid(
            field,
            format!("must hold at most {max} values, got {len}"),
        ));
    }
    Ok(())
}

/// Sampled coordinates from a payload's step and steps: at most
/// [`MAX_COORDINATE_SAMPLES`] of them, within the bounds [`Coordinates::new`] checks.
fn coordinates(field: &'static str, step_nano: u64, steps: &[u8]) -> Result<Coordinates> {
    at_most_values(field, steps.len(), MAX_COORDINATE_SAMPLES)?;
    Coordinates::new(step_nano, signed_bytes::unpack(steps))
        .map_err(|reason| invalid(field, reason))
}

/// A member's commitment to its update for a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitUpdate {
    /// The round (>= 1).
    pub round: u64,
    /// SHA-256 of the update blob.
    pub update_sha256: Sha256Hash,
    /// Size of the update blob, 1..=2^40 bytes.
    pub size_bytes: u64,
    /// Training samples behind the update, 1..=10^12.
    pub num_samples: u64,
    /// Training loss x 1e6.
    pub loss_micro: i64,
    /// L2 norm of the update x 1e6.
    pub norm_micro: u64,
    /// Fixed-size sketch of the update, 0..=4096 values (one byte each on the wire; the rule
    /// checks the consortium's length, and none when sketches come after the commitments).
    pub sketch: Vec<i8>,
    /// The change at the round's sampled coordinates, 0..=4096 values (the rule checks the
    /// consortium's count).
    pub coordinates: Coordinates,
    /// Where the blob can be fetched; `None` means from the member's endpoint by hash.
    pub blob_uri: Option<BlobUri>,
    /// The round whose parent (global) model the update was trained from; the payload's 0 is
    /// read as `round`, so this is never 0. The rules check it against the round
    /// ([`crate::rules::rounds::commit_update`]).
    pub base_round: u64,
}

impl CommitUpdate {
    pub(super) fn from_proto(m: &pb::CommitUpdate) -> Result<Self> {
        reject_unknown_fields(m, "commit_update")?;
        if m.sketch.len() > MAX_SKETCH_LENGTH {
            return Err(invalid(
                "commit_update.sketch",
                format!(
                    "must hold at most {MAX_SKETCH_LENGTH} values, got {}",
                    m.sketch.len()
                ),
            ));
        }
        let coordinates = coordinates(
            "commit_update.coordinate_steps",
            m.coordinate_step_nano,
            &m.coordinate_steps,
        )?;
        let round = round_number("commit_update.round", m.round)?;
        Ok(Self {
            round,
            update_sha256: field(
                "commit_update.update_sha256",
                Sha256Hash::parse(&m.update_sha256),
            )?,
            size_bytes: bounded("commit_update.size_bytes", m.size_bytes, 1, MAX_BLOB_BYTES)?,
            num_samples: bounded(
                "commit_update.num_samples",
                m.num_samples,
                1,
                MAX_NUM_SAMPLES,
            )?,
            loss_micro: m.loss_micro,
            norm_micro: m.norm_micro,
            sketch: signed_bytes::to_i8(&m.sketch),
            coordinates,
            blob_uri: optional_uri("commit_update.blob_uri", &m.blob_uri)?,
            base_round: if m.base_round == 0 {
                round
            } else {
                m.base_round
            },
        })
    }

    pub(super) fn to_proto(&self) -> pb::CommitUpdate {
        pb::CommitUpdate {
            round: self.round,
            update_sha256: self.update_sha256.as_str().to_owned(),
            size_bytes: self.size_bytes,
            num_samples: self.num_samples,
            loss_micro: self.loss_micro,
            norm_micro: self.norm_micro,
            sketch: signed_bytes::from_i8(&self.sketch),
            coordinate_step_nano: self.coordinates.step_nano(),
            coordinate_steps: self.coordinates.packed_steps(),
            blob_uri: uri_string(&self.blob_uri),
            base_round: self.base_round,
            ..Default::default()
        }
    }
}

/// One measured outgoing link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkMeasurement {
    /// The receiving member.
    pub to: PublicKey,
    /// Measured throughput, 1..=10^12 bytes/s.
    pub bytes_per_sec: u64,
    /// Round-trip time, 0..=3.6e9 us.
    pub rtt_us: u64,
    /// Size of the probe, 1..=2^40 bytes.
    pub probe_bytes: u64,
}

/// A sweep of bandwidth measurements from the signer to other members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportBandwidth {
    /// The round or probe epoch of the sweep.
    pub epoch: u64,
    /// 1..=256 measurements, sorted by target, one per target.
    pub measurements: Vec<LinkMeasurement>,
}

impl ReportBandwidth {
    pub(super) fn from_proto(m: &pb::ReportBandwidth) -> Result<Self> {
        reject_unknown_fields(m, "report_bandwidth")?;
        let count = m.measurements.len();
        if count == 0 || count > MAX_MEASUREMENTS {
            return Err(invalid(
                "report_bandwidth.measurements",
                format!("must hold 1..={MAX_MEASUREMENTS} measurements, got {count}"),
            ));
        }
        let mut measurements = Vec::with_capacity(count);
        for lm in m.get_measurements() {
            reject_unknown_fields(lm, "report_bandwidth.measurements")?;
            measurements.push(LinkMeasurement {
                to: field("report_bandwidth.measurements.to", PublicKey::parse(&lm.to))?,
                bytes_per_sec: bounded(
                    "report_bandwidth.measurements.bytes_per_sec",
                    lm.bytes_per_sec,
                    1,
                    MAX_BYTES_PER_SEC,
                )?,
                rtt_us: bounded(
                    "report_bandwidth.measurements.rtt_us",
                    lm.rtt_us,
                    0,
                    MAX_RTT_US,
                )?,
                probe_bytes: bounded(
                    "report_bandwidth.measurements.probe_bytes",
                    lm.probe_bytes,
                    1,
                    MAX_PROBE_BYTES,
                )?,
            });
        }
        measurements.sort_by(|a, b| a.to.cmp(&b.to));
        if measurements.windows(2).any(|w| w[0].to == w[1].to) {
            return Err(invalid(
                "report_bandwidth.measurements",
                "must not measure the same target twice".into(),
            ));
        }
        Ok(Self {
            epoch: m.epoch,
            measurements,
        })
    }

    pub(super) fn to_proto(&self) -> pb::ReportBandwidth {
        let measurements = self
            .measurements
            .iter()
            .map(|lm| pb::LinkMeasurement {
                to: lm.to.as_str().to_owned(),
                bytes_per_sec: lm.bytes_per_sec,
                rtt_us: lm.rtt_us,
                probe_bytes: lm.probe_bytes,
                ..Default::default()
            })
            .collect();
        pb::ReportBandwidth {
            epoch: self.epoch,
            measurements,
            ..Default::default()
        }
    }
}

/// Evaluate round `round`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvaluateRound {
    /// The round (>= 1).
    pub round: u64,
}

impl EvaluateRound {
    pub(super) fn from_proto(m: &pb::EvaluateRound) -> Result<Self> {
        reject_unknown_fields(m, "evaluate_round")?;
        Ok(Self {
            round: round_number("evaluate_round.round", m.round)?,
        })
    }

    pub(super) fn to_proto(&self) -> pb::EvaluateRound {
        pb::EvaluateRound {
            round: self.round,
            ..Default::default()
        }
    }
}

/// The aggregated global model of a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitAggregate {
    /// The round (>= 1).
    pub round: u64,
    /// SHA-256 of the global model blob.
    pub model_sha256: Sha256Hash,
    /// Members whose updates were aggregated: 1..=1024, sorted, unique.
    pub contributors: Vec<PublicKey>,
    /// The aggregation rule used (never unset).
    pub rule: pb::AggregationRule,
    /// Members excluded by the verdict: 0..=256, sorted, unique, disjoint from contributors.
    pub excluded: Vec<PublicKey>,
    /// Size of the model blob, 1..=2^40 bytes.
    pub size_bytes: u64,
    /// Where the blob can be fetched; `None` means from the aggregator's endpoint by hash.
    pub blob_uri: Option<BlobUri>,
}

impl CommitAggregate {
    pub(super) fn from_proto(m: &pb::CommitAggregate) -> Result<Self> {
        reject_unknown_fields(m, "commit_aggregate")?;
        if m.rule == pb::AggregationRule::AGGREGATION_RULE_UNSET {
            return Err(invalid("commit_aggregate.rule", "must be set".into()));
        }
        let contributors = key_set(
            "commit_aggregate.contributors",
            &m.contributors,
            1,
            MAX_ROUND_COMMITTERS,
        )?;
        let excluded = key_set(
            "commit_aggregate.excluded",
            &m.excluded,
            0,
            MAX_ROUND_COMMITTERS,
        )?;
        if excluded
            .iter()
            .any(|k| contributors.binary_search(k).is_ok())
        {
            return Err(invalid(
                "commit_aggregate.excluded",
                "must not name a contributor".into(),
            ));
        }
        Ok(Self {
            round: round_number("commit_aggregate.round", m.round)?,
            model_sha256: field(
                "commit_aggregate.model_sha256",
                Sha256Hash::parse(&m.model_sha256),
            )?,
            contributors,
            rule: m.rule,
            excluded,
            size_bytes: bounded(
                "commit_aggregate.size_bytes",
                m.size_bytes,
                1,
                MAX_BLOB_BYTES,
            )?,
            blob_uri: optional_uri("commit_aggregate.blob_uri", &m.blob_uri)?,
        })
    }

    pub(super) fn to_proto(&self) -> pb::CommitAggregate {
        pb::CommitAggregate {
            round: self.round,
            model_sha256: self.model_sha256.as_str().to_owned(),
            contributors: key_strings(&self.contributors),
            rule: self.rule,
            excluded: key_strings(&self.excluded),
            size_bytes: self.size_bytes,
            blob_uri: uri_string(&self.blob_uri),
            ..Default::default()
        }
    }
}

/// Close (or abandon) round `round`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseRound {
    /// The round (>= 1).
    pub round: u64,
}

impl CloseRound {
    pub(super) fn from_proto(m: &pb::CloseRound) -> Result<Self> {
        reject_unknown_fields(m, "close_round")?;
        Ok(Self {
            round: round_number("close_round.round", m.round)?,
        })
    }

    pub(super) fn to_proto(&self) -> pb::CloseRound {
        pb::CloseRound {
            round: self.round,
            ..Default::default()
        }
    }
}

/// Close round `round`'s commitments and draw its sketch seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealRound {
    /// The round (>= 1).
    pub round: u64,
}

impl SealRound {
    pub(super) fn from_proto(m: &pb::SealRound) -> Result<Self> {
        reject_unknown_fields(m, "seal_round")?;
        Ok(Self {
            round: round_number("seal_round.round", m.round)?,
        })
    }

    pub(super) fn to_proto(&self) -> pb::SealRound {
        pb::SealRound {
            round: self.round,
            ..Default::default()
        }
    }
}

/// A committer's sketch of its change in a sealed round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevealSketch {
    /// The round (>= 1).
    pub round: u64,
    /// The sketch, 1..=4096 values (one byte each on the wire; the rule checks the
    /// consortium's length).
    pub sketch: Vec<i8>,
}

impl RevealSketch {
    pub(super) fn from_proto(m: &pb::RevealSketch) -> Result<Self> {
        reject_unknown_fields(m, "reveal_sketch")?;
        if m.sketch.is_empty() || m.sketch.len() > MAX_SKETCH_LENGTH {
            return Err(invalid(
                "reveal_sketch.sketch",
                format!(
                    "must hold 1..={MAX_SKETCH_LENGTH} values, got {}",
                    m.sketch.len()
                ),
            ));
        }
        Ok(Self {
            round: round_number("reveal_sketch.round", m.round)?,
            sketch: signed_bytes::to_i8(&m.sketch),
        })
    }

    pub(super) fn to_proto(&self) -> pb::RevealSketch {
        pb::RevealSketch {
            round: self.round,
            sketch: signed_bytes::from_i8(&self.sketch),
            ..Default::default()
        }
    }
}

/// The round's aggregator reports that `member`'s commitment does not describe its blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisputeCommitment {
    /// The round (>= 1).
    pub round: u64,
    /// The committer whose statistics are disputed.
    pub member: PublicKey,
    /// Which statistic differs (never unset).
    pub mismatch: pb::StatMismatch,
    /// The blob's size as fetched, 0..=2^40 bytes (0 when the blob did not parse).
    pub size_bytes: u64,
    /// The recomputed L2 norm in micro-units (0 when the blob did not parse).
    pub norm_micro: u64,
    /// The recomputed sketch: empty when the blob did not parse, else the consortium's length
    /// (checked by the rule, which knows it), at most 4096 values.
    pub sketch: Vec<i8>,
    /// The recomputed sampled coordinates: empty when the blob did not parse, else the
    /// consortium's count (checked by the rule), at most 4096 values.
    pub coordinates: Coordinates,
}

impl DisputeCommitment {
    pub(super) fn from_proto(m: &pb::DisputeCommitment) -> Result<Self> {
        reject_unknown_fields(m, "dispute_commitment")?;
        if m.mismatch == pb::StatMismatch::STAT_MISMATCH_UNSET {
            return Err(invalid("dispute_commitment.mismatch", "must be set".into()));
        }
        at_most_values(
            "dispute_commitment.sketch",
            m.sketch.len(),
            MAX_SKETCH_LENGTH,
        )?;
        let coordinates = coordinates(
            "dispute_commitment.coordinate_steps",
            m.coordinate_step_nano,
            &m.coordinate_steps,
        )?;
        let malformed = m.mismatch == pb::StatMismatch::MALFORMED;
        if malformed
            && (m.size_bytes != 0
                || m.norm_micro != 0
                || !m.sketch.is_empty()
                || !coordinates.is_empty())
        {
            return Err(invalid(
                "dispute_commitment",
                "a MALFORMED dispute carries no recomputed statistics".into(),
            ));
        }
        Ok(Self {
            round: round_number("dispute_commitment.round", m.round)?,
            member: field("dispute_commitment.member", PublicKey::parse(&m.member))?,
            mismatch: m.mismatch,
            size_bytes: bounded(
                "dispute_commitment.size_bytes",
                m.size_bytes,
                0,
                MAX_BLOB_BYTES,
            )?,
            norm_micro: m.norm_micro,
            sketch: signed_bytes::to_i8(&m.sketch),
            coordinates,
        })
    }

    pub(super) fn to_proto(&self) -> pb::DisputeCommitment {
        pb::DisputeCommitment {
            round: self.round,
            member: self.member.as_str().to_owned(),
            mismatch: self.mismatch,
            size_bytes: self.size_bytes,
            norm_micro: self.norm_micro,
            sketch: signed_bytes::from_i8(&self.sketch),
            coordinate_step_nano: self.coordinates.step_nano(),
            coordinate_steps: self.coordinates.packed_steps(),
            ..Default::default()
        }
    }
}

/// A verifier committee member's recomputation of round `round`'s aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestAggregate {
    /// The round (>= 1).
    pub round: u64,
    /// SHA-256 of the aggregate the signer recomputed.
    pub model_sha256: Sha256Hash,
    /// Disputed members whose statistics the signer found correct: 0..=256, sorted, unique.
    pub false_disputes: Vec<PublicKey>,
    /// Accepted members whose statistics contradict their blobs (the aggregator did not
    /// dispute them): 0..=256, sorted, unique.
    pub missed: Vec<PublicKey>,
}

impl AttestAggregate {
    pub(super) fn from_proto(m: &pb::AttestAggregate) -> Result<Self> {
        reject_unknown_fields(m, "attest_aggregate")?;
        Ok(Self {
            round: round_number("attest_aggregate.round", m.round)?,
            model_sha256: field(
                "attest_aggregate.model_sha256",
                Sha256Hash::parse(&m.model_sha256),
            )?,
            false_disputes: key_set(
                "attest_aggregate.false_disputes",
                &m.false_disputes,
                0,
                MAX_ROUND_COMMITTERS,
            )?,
            missed: key_set(
                "attest_aggregate.missed",
                &m.missed,
                0,
                MAX_ROUND_COMMITTERS,
            )?,
        })
    }

    pub(super) fn to_proto(&self) -> pb::AttestAggregate {
        pb::AttestAggregate {
            round: self.round,
            model_sha256: self.model_sha256.as_str().to_owned(),
            false_disputes: key_strings(&self.false_disputes),
            missed: key_strings(&self.missed),
            ..Default::default()
        }
    }
}
