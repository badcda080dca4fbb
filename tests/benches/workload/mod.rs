//! The benchmarks' `bcfl` workload, one definition for every ledger benchmark: the consortium
//! with its members, and the timed transactions, `ReportBandwidth` by a member about one of its
//! outgoing links (the processor reads the consortium, the signer, the target member and the
//! link, and writes the link: a real read-modify-write with the family's validation).

use bcfl_ledger::family::BcflTransaction;
use bcfl_ledger::keys::Signer;
use bcfl_ledger::protocol::{Batch, BatchBuilder};
use bcfl_protos::bcfl as pb;

pub fn payload_of(action: impl FnOnce(&mut pb::BcflPayload)) -> pb::BcflPayload {
    let mut payload = pb::BcflPayload::new();
    action(&mut payload);
    payload
}

/// One bandwidth report about the link to `to`; `nonce` makes each transaction unique.
pub fn report(to: &Signer, nonce: u64) -> BcflTransaction {
    let measurement = pb::LinkMeasurement {
        to: to.public_key().as_hex().to_owned(),
        bytes_per_sec: 10_000_000 + nonce,
        rtt_us: 500,
        probe_bytes: 1 << 20,
        ..Default::default()
    };
    let payload = payload_of(|p| {
        p.set_report_bandwidth(pb::ReportBandwidth {
            epoch: 1,
            measurements: vec![measurement].into(),
            ..Default::default()
        })
    });
    BcflTransaction::new(payload).with_nonce(format!("bench-{nonce}"))
}

/// `count` batches of `per_batch` bandwidth reports; batch `k` is signed by member `k % n`.
pub fn build_batches(
    members: &[Signer],
    count: usize,
    per_batch: usize,
    nonce_base: u64,
) -> anyhow::Result<Vec<Batch>> {
    let mut batches = Vec::with_capacity(count);
    for k in 0..count {
        let signer = &members[k % members.len()];
        let mut txns = Vec::with_capacity(per_batch);
        for t in 0..per_batch {
            let nonce = nonce_base + (k * per_batch + t) as u64;
            let to = &members[(k + t + 1) % members.len()];
            let to = if to.public_key() == signer.public_key() {
                &members[(k + t + 2) % members.len()]
            } else {
                to
            };
            txns.push(report(to, nonce).build(signer)?);
        }
        batches.push(BatchBuilder::new().with_transactions(txns).build(signer)?);
    }
    Ok(batches)
}

/// One batch by `admin`: the consortium, then every member registered.
pub fn consortium_batch(admin: &Signer, members: &[Signer]) -> anyhow::Result<Batch> {
    let init = payload_of(|p| {
        p.set_init_consortium(pb::InitConsortium {
            admin_keys: vec![admin.public_key().as_hex().to_owned()].into(),
            params: Some(pb::ConsortiumParams {
                min_participants: 2,
                commit_quorum: 2,
                aggregation_rule: pb::AggregationRule::FEDAVG,
                model_id: "bench".into(),
                base_model_sha256: "00".repeat(32),
                sketch_length: 16,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        })
    });
    let mut txns = vec![BcflTransaction::new(init).build(admin)?];
    for (i, member) in members.iter().enumerate() {
        let register = payload_of(|p| {
            p.set_register_member(pb::RegisterMember {
                public_key: member.public_key().as_hex().to_owned(),
                name: format!("member-{i}"),
                endpoint: format!("http://127.0.0.1:{}", 9000 + i),
                ..Default::default()
            })
        });
        txns.push(BcflTransaction::new(register).build(admin)?);
    }
    Ok(BatchBuilder::new().with_transactions(txns).build(admin)?)
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// p50, p95, max and mean of latency samples in milliseconds, as JSON.
pub fn latency_summary(mut samples: Vec<f64>) -> serde_json::Value {
    samples.sort_by(f64::total_cmp);
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    serde_json::json!({
        "samples": samples.len(),
        "p50_ms": round3(pick(0.5)),
        "p95_ms": round3(pick(0.95)),
        "max_ms": round3(pick(1.0)),
        "mean_ms": round3(samples.iter().sum::<f64>() / samples.len() as f64),
    })
}
