//! Bandwidth probes: measure throughput and round-trip time to every other member with real
//! transfers, and report a sweep on chain as one `ReportBandwidth` transaction.
//!
//! For each peer, in turn (so that probes do not compete for the prober's own link):
//!
//! 1. RTT: the smallest of `rtt_samples` times of `GET /v1/probe?bytes=0` on a warm connection
//!    (request to end of response: one round trip plus server time).
//! 2. Throughput of the link *from the prober to the peer* (the direction the ledger records:
//!    `from` is the signer): `POST /v1/probe` with N bytes of incompressible data; the time
//!    from the start of the upload to the peer's receipt (sent after its last byte), less one
//!    RTT, divides N.
//!
//! Probes are signed requests like any other ([`PeerClient`]): a peer answers only members.
//!
//! A peer that fails fast (within [`FAST_FAILURE`]: refused, or not yet knowing the prober) is
//! tried twice more, after 0.5 s and 1.5 s ([`RETRY_PAUSES`]): at a consortium's start a
//! peer's server may not listen yet, and a link missing from the first round's reports leaves
//! the graph without a centre for the next round; a peer that timed out is not tried again. A
//! peer that still cannot be probed is left out of the report: the family accepts only positive
//! bandwidths, and a link with no fresh samples ages out of the routing graph's median window.

use std::time::{Duration, Instant};

use bcfl_protos::bcfl as pb;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::auth::{content_sha256, PeerClient};
use super::error::{NetError, Result};
use super::route::Peers;
use super::server::{probe_pattern, probe_stream, ProbeReceipt};
use bcfl_ledger::family::BcflTransaction;
use bcfl_ledger::keys::Signer;
use bcfl_ledger::rest::{BatchStatus, RestClient};
use bcfl_ledger::state::FamilyState;

/// The most measurements one `ReportBandwidth` may hold (the family's limit).
pub use bcfl_processor::limits::{MAX_BYTES_PER_SEC, MAX_MEASUREMENTS};

/// How to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Bytes transferred for the throughput measurement.
    pub bytes: u64,
    /// Small requests whose minimum time is the RTT.
    pub rtt_samples: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            bytes: 8 << 20,
            rtt_samples: 5,
        }
    }
}

/// One measured link from the prober to a peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkProbe {
    /// The peer's node id.
    pub to: String,
    /// Its base URL.
    pub url: String,
    /// Measured throughput, bytes per second, as measured ([`report_payload`] brings it within
    /// what the ledger records, [`ledger_rate`]).
    pub bytes_per_sec: u64,
    /// Measured round-trip time, microseconds.
    pub rtt_us: u64,
    /// Bytes of the throughput probe.
    pub probe_bytes: u64,
    /// Seconds the throughput transfer took, request to last byte.
    pub seconds: f64,
}

async fn timed_get(http: &PeerClient, url: &str, peer: &str) -> Result<(u64, Duration)> {
    let started = Instant::now();
    let response = http
        .get(peer, url)
        .send()
        .await
        .map_err(|e| NetError::peer(peer, bcfl_tls::explain(&e)))?;
    if !response.status().is_success() {
        return Err(NetError::peer(
            peer,
            format!("{url}: HTTP {}", response.status()),
        ));
    }
    let mut received = 0u64;
    let mut body = response.bytes_stream();
    while let Some(piece) = body.next().await {
        received += piece.map_err(|e| NetError::peer(peer, e))?.len() as u64;
    }
    Ok((received, started.elapsed()))
}

/// The SHA-256 (hex) of `bytes` bytes of [`probe_pattern`], the body of an upload probe.
pub fn probe_sha256(bytes: u64) -> String {
    use sha2::Digest;
    let pattern = probe_pattern();
    let mut hasher = sha2::Sha256::new();
    let mut left = bytes;
    while left > 0 {
        let take = left.min(pattern.len() as u64) as usize;
        hasher.update(&pattern[..take]);
        left -= take as u64;
    }
    if bytes == 0 {
        return content_sha256(b"");
    }
    hex::encode(hasher.finalize())
}

async fn timed_upload(
    http: &PeerClient,
    peer: &str,
    base: &str,
    bytes: u64,
) -> Result<(u64, Duration)> {
    // Hashed before the clock starts: the signature covers the body.
    let sha256 = probe_sha256(bytes);
    let body = reqwest::Body::wrap_stream(probe_stream(probe_pattern(), bytes));
    let started = Instant::now();
    let response = http
        .request_hashed(
            reqwest::Method::POST,
            peer,
            &format!("{base}/v1/probe"),
            sha256,
        )
        .header(reqwest::header::CONTENT_LENGTH, bytes)
        .body(body)
        .send()
        .await
        .map_err(|e| NetError::peer(base, e))?;
    if !response.status().is_success() {
        return Err(NetError::peer(
            base,
            format!("probe upload: HTTP {}", response.status()),
        ));
    }
    let receipt: ProbeReceipt = response.json().await.map_err(|e| NetError::peer(base, e))?;
    Ok((receipt.bytes, started.elapsed()))
}

/// Probes the peer serving at `url` (node id `to`).
pub async fn probe_peer(
    http: &PeerClient,
    to: &str,
    url: &str,
    config: &ProbeConfig,
) -> Result<LinkProbe> {
    let base = url.trim_end_matches('/');
    let mut rtt = Duration::MAX;
    for _ in 0..config.rtt_samples.max(1) {
        let (_, elapsed) = timed_get(http, &format!("{base}/v1/probe?bytes=0"), to).await?;
        rtt = rtt.min(elapsed);
    }
    let (received, elapsed) = timed_upload(http, to, base, config.bytes).await?;
    if received != config.bytes {
        return Err(NetError::Truncated {
            blob: "probe".into(),
            expected: config.bytes,
            received,
        });
    }
    let transfer = elapsed.saturating_sub(rtt).max(Duration::from_micros(1));
    let bytes_per_sec = (received as f64 / transfer.as_secs_f64()).round() as u64;
    Ok(LinkProbe {
        to: to.to_owned(),
        url: base.to_owned(),
        bytes_per_sec,
        rtt_us: rtt.as_micros().min(u128::from(u64::MAX)) as u64,
        probe_bytes: config.bytes,
        seconds: elapsed.as_secs_f64(),
    })
}

/// The outcome of a sweep: the links measured and the peers that failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// Measured links, by peer.
    pub links: Vec<LinkProbe>,
    /// Peers that could not be probed, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Pauses before probing the peers that failed again: a peer's server may still be starting
/// (the first round of a consortium), so a peer that failed fast is tried twice more before
/// it counts as failed.
pub const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(500), Duration::from_millis(1500)];

/// A probe that failed within this time (connection refused, a server that does not know the
/// prober yet) is tried again; one that failed later (a timeout: a hung peer) is not, so that a
/// dead peer costs a sweep one timeout, not three.
pub const FAST_FAILURE: Duration = Duration::from_secs(2);

/// How long one peer's probe may take: 10 s, plus the probe's bytes at 64 KiB/s (a link slower
/// than half a megabit counts as failed). The HTTP client bounds only the connection, so a peer
/// that accepts and never answers would otherwise hold a sweep, and the member's round, forever.
pub fn probe_timeout(config: &ProbeConfig) -> Duration {
    Duration::from_secs(10) + Duration::from_secs_f64(config.bytes as f64 / 65_536.0)
}

/// Probes every peer but `me`, one after another, each within [`probe_timeout`]; the peers that
/// failed fast
/// ([`FAST_FAILURE`]) are tried again after each of [`RETRY_PAUSES`].
pub async fn sweep(http: &PeerClient, peers: &Peers, me: &str, config: &ProbeConfig) -> Sweep {
    let mut result = Sweep::default();
    let mut pending: Vec<(&String, &String)> =
        peers.0.iter().filter(|(n, _)| n.as_str() != me).collect();
    for (attempt, pause) in (1..).zip(std::iter::once(None).chain(RETRY_PAUSES.map(Some))) {
        if pending.is_empty() {
            break;
        }
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        let mut retry = Vec::new();
        for (node, url) in pending {
            result.failed.retain(|(n, _)| n != node);
            let started = Instant::now();
            let limit = probe_timeout(config);
            let probed = tokio::time::timeout(limit, probe_peer(http, node, url, config))
                .await
                .unwrap_or_else(|_| {
                    Err(NetError::peer(
                        node,
                        format!("probe timed out after {:.0} s", limit.as_secs_f64()),
                    ))
                });
            match probed {
                Ok(link) => {
                    tracing::info!(to = %node, bytes_per_sec = link.bytes_per_sec, rtt_us = link.rtt_us, "probed");
                    result.links.push(link);
                }
                Err(e) => {
                    tracing::warn!(to = %node, error = %e, attempt, "probe failed");
                    result.failed.push((node.clone(), e.to_string()));
                    if started.elapsed() < FAST_FAILURE {
                        retry.push((node, url));
                    }
                }
            }
        }
        pending = retry;
    }
    result
}

/// `bytes_per_sec` within what a `ReportBandwidth` may record, `1..=`[`MAX_BYTES_PER_SEC`]: an
/// upload no slower than the round trip (on loopback the difference can be a microsecond, a
/// megabyte in it 10^12 bytes a second) is as fast as the ledger records.
pub fn ledger_rate(bytes_per_sec: u64) -> u64 {
    bytes_per_sec.clamp(1, MAX_BYTES_PER_SEC)
}

/// The `ReportBandwidth` payload of a sweep's links (which must be 1..=256), each rate within
/// [`ledger_rate`].
pub fn report_payload(epoch: u64, links: &[LinkProbe]) -> Result<pb::BcflPayload> {
    if links.is_empty() || links.len() > MAX_MEASUREMENTS {
        return Err(NetError::peer(
            "report",
            format!(
                "a report holds 1..={MAX_MEASUREMENTS} links, the sweep measured {}",
                links.len()
            ),
        ));
    }
    let measurements: Vec<pb::LinkMeasurement> = links
        .iter()
        .map(|l| pb::LinkMeasurement {
            to: l.to.clone(),
            bytes_per_sec: ledger_rate(l.bytes_per_sec),
            rtt_us: l.rtt_us,
            probe_bytes: l.probe_bytes.max(1),
            ..Default::default()
        })
        .collect();
    let mut payload = pb::BcflPayload::new();
    payload.set_report_bandwidth(pb::ReportBandwidth {
        epoch,
        measurements: measurements.into(),
        ..Default::default()
    });
    Ok(payload)
}

/// Signs and submits a sweep as one `ReportBandwidth` transaction; with `wait`, until it
/// commits (see [`RestClient::submit`]).
pub async fn submit_sweep(
    client: &RestClient,
    signer: &Signer,
    epoch: u64,
    links: &[LinkProbe],
    wait: Option<Duration>,
) -> Result<Vec<BatchStatus>> {
    let batches = BcflTransaction::new(report_payload(epoch, links)?).into_batch_list(signer)?;
    Ok(client.submit(&batches, wait).await?)
}

/// The active members with an endpoint, by public key.
pub fn ledger_peers(state: &FamilyState) -> Peers {
    Peers(
        state
            .members
            .values()
            .filter(|m| m.status == pb::MemberStatus::ACTIVE && !m.endpoint.is_empty())
            .map(|m| {
                (
                    m.public_key.clone(),
                    m.endpoint.trim_end_matches('/').to_owned(),
                )
            })
            .collect(),
    )
}
