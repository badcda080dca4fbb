//! The commands that sign and submit a `bcfl` transaction.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use bcfl_client::fixed;
use bcfl_ledger::family::BcflTransaction;
use bcfl_ledger::rest::BatchStatusKind;
use bcfl_processor::rules::rounds::initial_model;
use bcfl_processor::statistics::Coordinates;
use bcfl_protos::bcfl as pb;
use clap::{Args, Subcommand, ValueEnum};

use super::Context;
use bcfl_cli::context::WaitArgs;

pub(crate) mod params;

pub(crate) use params::file_sha256;

/// `bcfl consortium ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ConsortiumCommand {
    /// Create the consortium with its admins and parameters (once per ledger).
    Init(Box<params::InitArgs>),
}

/// `bcfl member ...`
#[derive(Debug, Subcommand)]
pub(crate) enum MemberCommand {
    /// Register a member (admin), or reinstate a suspended one.
    Register {
        /// The member's public key (66 hex) or key name.
        #[arg(value_name = "KEY")]
        member: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Base URL of the member's blob server: exactly http://HOST:PORT or https://HOST:PORT
        /// (no path, query or user info).
        #[arg(long, value_name = "URL", value_parser = endpoint)]
        endpoint: String,
        /// The most samples the member's commitments may claim: the shard size the consortium
        /// agreed for it (FedAvg weighs an update by its claim; default: no cap, or a
        /// reinstated member's old one).
        #[arg(long, value_name = "N", value_parser = sample_cap)]
        max_samples: Option<u64>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Change a member's name, endpoint or sample cap (admin, or the member itself for the
    /// first two).
    Update {
        /// The member's public key (66 hex) or key name.
        #[arg(value_name = "KEY")]
        member: String,
        /// New display name (default: unchanged).
        #[arg(long)]
        name: Option<String>,
        /// New blob server URL, http://HOST:PORT or https://HOST:PORT (default: unchanged).
        #[arg(long, value_name = "URL", value_parser = endpoint)]
        endpoint: Option<String>,
        /// New sample cap (admins only; default: unchanged).
        #[arg(long, value_name = "N", value_parser = sample_cap)]
        max_samples: Option<u64>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Suspend a member (admin).
    Suspend {
        /// The member's public key (66 hex) or key name.
        #[arg(value_name = "KEY")]
        member: String,
        /// Why (recorded on chain).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// Round topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Peer to peer: the aggregator is a member, transfers follow routed paths.
    Serverless,
    /// Star around a central aggregator (baseline).
    Server,
}

impl Mode {
    fn to_proto(self) -> pb::RoundMode {
        match self {
            Self::Serverless => pb::RoundMode::SERVERLESS,
            Self::Server => pb::RoundMode::SERVER,
        }
    }
}

/// When a round's aggregate may be formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Synchronization {
    /// Every update is trained from the round's own parent model; evaluation waits for the
    /// consortium's commit quorum.
    Synchronous,
    /// Evaluation waits for --buffer commitments only; updates may be trained from the parent
    /// model of a round up to --max-staleness rounds earlier.
    BufferedAsync,
}

/// The synchronization fields of `OpenRound`: (`sync`, `buffer_size`, `max_staleness`). The
/// processor checks them again; this only turns flag mistakes into flag-named errors.
fn round_schedule(
    sync: Synchronization,
    buffer: Option<u32>,
    max_staleness: Option<u32>,
) -> anyhow::Result<(pb::RoundSync, u32, u32)> {
    match sync {
        Synchronization::Synchronous => {
            if buffer.is_some() || max_staleness.is_some() {
                bail!("--buffer and --max-staleness apply to --sync buffered-async rounds only");
            }
            Ok((pb::RoundSync::SYNCHRONOUS, 0, 0))
        }
        Synchronization::BufferedAsync => {
            let Some(buffer) = buffer.filter(|b| *b > 0) else {
                bail!("--sync buffered-async needs --buffer K (K >= 1 commitments)");
            };
            Ok((
                pb::RoundSync::BUFFERED_ASYNC,
                buffer,
                max_staleness.unwrap_or(0),
            ))
        }
    }
}

/// `bcfl round ...`
#[derive(Debug, Subcommand)]
pub(crate) enum RoundCommand {
    /// Open the next round (admin).
    Open {
        /// Round number [default: the consortium's current round + 1].
        #[arg(long)]
        round: Option<u64>,
        /// SHA-256 of the parent global model [default: the previous round's aggregate, or
        /// the consortium's base model for round 1].
        #[arg(long, value_name = "HEX")]
        parent_model_sha256: Option<String>,
        /// The aggregating member: a public key, a key name, or `centre` (the centre of the
        /// measured bandwidth graph among active members) [default: the signer].
        #[arg(long)]
        aggregator: Option<String>,
        /// Round topology.
        #[arg(long, value_enum, default_value_t = Mode::Serverless)]
        mode: Mode,
        /// When the round can be aggregated: once the consortium's commit quorum committed
        /// (synchronous), or once --buffer members committed, accepting stale updates
        /// (buffered-async).
        #[arg(long, value_enum, default_value_t = Synchronization::Synchronous)]
        sync: Synchronization,
        /// buffered-async: commitments that let the round be evaluated (1..=1024).
        #[arg(long, value_name = "K")]
        buffer: Option<u32>,
        /// buffered-async: how many rounds old an update's base model may be (0..=16) [default:
        /// 0].
        #[arg(long, value_name = "S")]
        max_staleness: Option<u32>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Close a round's commitments and draw its sketch seed, in a consortium whose sketches come
    /// after the commitments (admin or the round's aggregator).
    Seal {
        /// Round number [default: the current round].
        #[arg(long)]
        round: Option<u64>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Reveal this member's sketch to a sealed round, made with the round's `sketch_seed`.
    Reveal {
        /// Round number [default: the current round].
        #[arg(long)]
        round: Option<u64>,
        /// The sketch: a file of integers separated by commas or whitespace, exactly the
        /// consortium's sketch length of them, within -128..=127.
        #[arg(long, value_name = "FILE")]
        sketch: PathBuf,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Record the anomaly verdict of a round (admin or the round's aggregator).
    Evaluate {
        /// Round number [default: the current round].
        #[arg(long)]
        round: Option<u64>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Close a round (admin or aggregator after the aggregate; admin only to abandon it).
    Close {
        /// Round number [default: the current round].
        #[arg(long)]
        round: Option<u64>,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// `bcfl commit`
#[derive(Debug, Args)]
pub(crate) struct CommitArgs {
    /// Round number [default: the current round].
    #[arg(long)]
    round: Option<u64>,
    /// The round whose global (parent) model the update was trained from; earlier than the
    /// round only in buffered-async rounds, within their staleness bound [default: the round
    /// itself].
    #[arg(long, value_name = "N")]
    base_round: Option<u64>,
    /// The update blob: its SHA-256 and size are committed.
    #[arg(long, value_name = "FILE")]
    blob: PathBuf,
    /// Where other members fetch the blob [default: none recorded].
    #[arg(long, default_value = "")]
    blob_uri: String,
    /// Number of training samples.
    #[arg(long)]
    samples: u64,
    /// Training loss (decimal, stored as micro units).
    #[arg(long, allow_negative_numbers = true)]
    loss: String,
    /// L2 norm of the update (decimal, stored as micro units).
    #[arg(long)]
    norm: String,
    /// The update's sketch: a file of integers separated by commas or whitespace, exactly the
    /// consortium's sketch length of them; left out when the consortium's sketches come after
    /// the commitments (`bcfl round reveal` once the round is sealed).
    #[arg(long, value_name = "FILE")]
    sketch: Option<PathBuf>,
    /// The update's values at the round's sampled coordinates, in nano-units: a file of
    /// integers like the sketch's, exactly the consortium's `coordinate_samples` of them,
    /// committed in steps of the largest magnitude over 127 as members commit them
    /// [default: none, for a consortium that samples none].
    #[arg(long, value_name = "FILE")]
    coordinates: Option<PathBuf>,
    #[command(flatten)]
    wait: WaitArgs,
}

/// `bcfl bandwidth ...`
#[derive(Debug, Subcommand)]
pub(crate) enum BandwidthCommand {
    /// Report measured links out of the signer.
    Report {
        /// Probe epoch [default: the current round].
        #[arg(long)]
        epoch: Option<u64>,
        /// Size of the probe transfer behind links given without PROBE_BYTES.
        #[arg(long, default_value_t = 1 << 20)]
        probe_bytes: u64,
        /// A measured link: `TO:BYTES_PER_SEC:RTT_US[:PROBE_BYTES]` (TO is a key or key name).
        #[arg(
            long = "link",
            required = true,
            value_name = "TO:BPS:RTT_US[:PROBE_BYTES]"
        )]
        links: Vec<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// `bcfl aggregate ...`
#[derive(Debug, Subcommand)]
pub(crate) enum AggregateCommand {
    /// Commit the global model of a round (the round's aggregator).
    Commit {
        /// Round number [default: the current round].
        #[arg(long)]
        round: Option<u64>,
        /// The global model blob: its SHA-256 and size are committed.
        #[arg(long, value_name = "FILE")]
        model: PathBuf,
        /// Where members fetch the model [default: none recorded].
        #[arg(long, default_value = "")]
        blob_uri: String,
        /// Contributors (keys or key names) [default: the verdict's accepted members].
        #[arg(long, value_delimiter = ',')]
        contributors: Vec<String>,
        /// Excluded members [default: the verdict's excluded members].
        #[arg(long, value_delimiter = ',')]
        excluded: Vec<String>,
        /// Aggregation rule used (fedavg, median, trimmed-mean, krum, multi-krum; parameters
        /// after `:` are accepted and not recorded) [default: the consortium's rule].
        #[arg(long, value_name = "RULE")]
        rule: Option<params::Rule>,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// Signs `payload`, submits it, prints the batch id and status.
async fn submit(
    ctx: &Context,
    payload: pb::BcflPayload,
    wait: &WaitArgs,
) -> anyhow::Result<ExitCode> {
    let signer = ctx.signer()?;
    let batches = BcflTransaction::new(payload).into_batch_list(&signer)?;
    let client = ctx.client()?;
    let statuses = client.submit(&batches, wait.wait()).await?;
    ctx.print_statuses(&statuses);
    if let (Some(timeout), Some(open)) = (
        wait.wait(),
        statuses
            .iter()
            .find(|s| s.status != BatchStatusKind::Committed),
    ) {
        bail!(
            "batch {} is still {} after waiting {}s (raise --wait-timeout, or check that bcfl-tp \
             is connected to the validator)",
            open.id,
            open.status,
            timeout.as_secs()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn consortium_of(ctx: &Context) -> anyhow::Result<pb::Consortium> {
    ctx.reader()?
        .consortium(None)
        .await?
        .ok_or_else(|| anyhow!("the ledger has no consortium yet (run `bcfl consortium init`)"))
}

async fn current_round(ctx: &Context, round: Option<u64>) -> anyhow::Result<u64> {
    match round {
        Some(r) => Ok(r),
        None => match consortium_of(ctx).await?.current_round {
            0 => bail!("no round has been opened yet"),
            r => Ok(r),
        },
    }
}

pub(crate) async fn consortium(ctx: &Context, cmd: ConsortiumCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConsortiumCommand::Init(args) => {
            let signer = ctx.signer()?;
            let mut admins = Vec::new();
            for admin in &args.admins {
                admins.push(ctx.public_key(admin)?);
            }
            if admins.is_empty() {
                admins.push(signer.public_key().as_hex().to_owned());
            }
            let params = args.to_params()?;
            let mut payload = pb::BcflPayload::new();
            payload.set_init_consortium(pb::InitConsortium {
                admin_keys: admins.into(),
                params: Some(params).into(),
                ..Default::default()
            });
            submit(ctx, payload, &args.wait).await
        }
    }
}

/// `--endpoint`: the processor's rule ([`Endpoint`](bcfl_processor::payload::Endpoint)),
/// checked before anything is signed so the user reads why at once.
fn endpoint(value: &str) -> Result<String, String> {
    bcfl_processor::payload::Endpoint::parse(value)
        .map(|e| e.as_str().to_owned())
        .map_err(|e| format!("the endpoint {e}"))
}

/// `--max-samples`: within the processor's bounds for a sample count.
fn sample_cap(value: &str) -> Result<u64, String> {
    use bcfl_processor::limits::MAX_NUM_SAMPLES;
    match value.parse::<u64>() {
        Ok(n) if (1..=MAX_NUM_SAMPLES).contains(&n) => Ok(n),
        _ => Err(format!(
            "a sample cap is a whole number from 1 to {MAX_NUM_SAMPLES}"
        )),
    }
}

pub(crate) async fn member(ctx: &Context, cmd: MemberCommand) -> anyhow::Result<ExitCode> {
    let mut payload = pb::BcflPayload::new();
    let wait = match cmd {
        MemberCommand::Register {
            member,
            name,
            endpoint,
            max_samples,
            wait,
        } => {
            payload.set_register_member(pb::RegisterMember {
                public_key: ctx.public_key(&member)?,
                name,
                endpoint,
                max_samples: max_samples.unwrap_or(0),
                ..Default::default()
            });
            wait
        }
        MemberCommand::Update {
            member,
            name,
            endpoint,
            max_samples,
            wait,
        } => {
            let public_key = ctx.public_key(&member)?;
            let current = ctx
                .reader()?
                .member(&public_key, None)
                .await?
                .ok_or_else(|| anyhow!("{public_key} is not a member"))?;
            if name.is_none() && endpoint.is_none() && max_samples.is_none() {
                bail!("nothing to update: pass --name, --endpoint and/or --max-samples");
            }
            payload.set_update_member(pb::UpdateMember {
                public_key,
                name: name.unwrap_or(current.name),
                // Empty keeps the old value, so a name change never resubmits an endpoint.
                endpoint: endpoint.unwrap_or_default(),
                max_samples: max_samples.unwrap_or(0),
                ..Default::default()
            });
            wait
        }
        MemberCommand::Suspend {
            member,
            reason,
            wait,
        } => {
            payload.set_suspend_member(pb::SuspendMember {
                public_key: ctx.public_key(&member)?,
                reason,
                ..Default::default()
            });
            wait
        }
    };
    submit(ctx, payload, &wait).await
}

/// The model round `previous` ended with, the parent of the round after it: its aggregate, or
/// for an abandoned round its own parent. A round that is not closed yet is an error that says
/// so (the next round cannot open before it closes, whatever parent is passed).
async fn previous_model(ctx: &Context, previous: u64) -> anyhow::Result<String> {
    let reader = ctx.reader()?;
    let round = reader
        .round(previous, None)
        .await?
        .ok_or_else(|| anyhow!("round {previous} does not exist"))?;
    if round.phase != pb::RoundPhase::CLOSED {
        bail!(
            "round {previous} is still open ({:?}): close it first (`bcfl round close --round \
             {previous}` by an admin or its aggregator once aggregated; an admin may abandon it \
             earlier the same way)",
            round.phase
        );
    }
    Ok(match reader.aggregate(previous, None).await? {
        Some(aggregate) => aggregate.model_sha256,
        None => round.parent_model_sha256,
    })
}

pub(crate) async fn round(ctx: &Context, cmd: RoundCommand) -> anyhow::Result<ExitCode> {
    let mut payload = pb::BcflPayload::new();
    let wait = match cmd {
        RoundCommand::Open {
            round,
            parent_model_sha256,
            aggregator,
            mode,
            sync,
            buffer,
            max_staleness,
            wait,
        } => {
            let (sync, buffer_size, max_staleness) = round_schedule(sync, buffer, max_staleness)?;
            let consortium = consortium_of(ctx).await?;
            let number = round.unwrap_or(consortium.current_round + 1);
            let parent = match parent_model_sha256 {
                Some(hash) => hash,
                None if number <= 1 => initial_model(consortium.get_params()).to_owned(),
                None => previous_model(ctx, number - 1).await?,
            };
            let aggregator = match aggregator {
                Some(a) if a == "centre" => {
                    let mut state = ctx.reader()?.family_state(None).await?;
                    // The processor refuses an aggregator the previous round's verdict excluded:
                    // leave those members out of the candidates.
                    if let Some(verdict) = state.verdicts.get(&number.saturating_sub(1)) {
                        for key in verdict.get_excluded() {
                            state.members.remove(key);
                        }
                    }
                    super::centre::centre_aggregator(&state)?
                }
                Some(a) => ctx.public_key(&a)?,
                None => ctx.signer()?.public_key().as_hex().to_owned(),
            };
            payload.set_open_round(pb::OpenRound {
                round: number,
                parent_model_sha256: parent,
                aggregator,
                mode: mode.to_proto(),
                sync,
                buffer_size,
                max_staleness,
                ..Default::default()
            });
            wait
        }
        RoundCommand::Seal { round, wait } => {
            let round = current_round(ctx, round).await?;
            payload.set_seal_round(pb::SealRound {
                round,
                ..Default::default()
            });
            wait
        }
        RoundCommand::Reveal {
            round,
            sketch,
            wait,
        } => {
            let round = current_round(ctx, round).await?;
            let consortium = consortium_of(ctx).await?;
            payload.set_reveal_sketch(pb::RevealSketch {
                round,
                sketch: read_sketch(&sketch, consortium.get_params())?,
                ..Default::default()
            });
            wait
        }
        RoundCommand::Evaluate { round, wait } => {
            let round = current_round(ctx, round).await?;
            payload.set_evaluate_round(pb::EvaluateRound {
                round,
                ..Default::default()
            });
            wait
        }
        RoundCommand::Close { round, wait } => {
            let round = current_round(ctx, round).await?;
            payload.set_close_round(pb::CloseRound {
                round,
                ..Default::default()
            });
            wait
        }
    };
    submit(ctx, payload, &wait).await
}

/// Reads the integers of `what` (a sketch, coordinates) separated by commas and/or whitespace.
pub(crate) fn read_integers<T: std::str::FromStr>(
    path: &Path,
    what: &str,
) -> anyhow::Result<Vec<T>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} file {}", path.display()))?;
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .enumerate()
        .map(|(i, t)| {
            t.parse::<T>().map_err(|_| {
                anyhow!(
                    "{what} value #{} ({t:?}) is not a {}-bit integer",
                    i + 1,
                    std::mem::size_of::<T>() * 8
                )
            })
        })
        .collect()
}

/// The sketch in `path`: exactly the consortium's sketch length of integers, packed one byte a
/// value as the ledger keeps it.
fn read_sketch(path: &Path, params: &pb::ConsortiumParams) -> anyhow::Result<Vec<u8>> {
    let sketch: Vec<i32> = read_integers(path, "sketch")?;
    let expected = params.sketch_length as usize;
    if sketch.len() != expected {
        bail!(
            "the sketch in {} has {} values; the consortium requires exactly {expected}",
            path.display(),
            sketch.len()
        );
    }
    // The ledger keeps a sketch one byte a value, as members' own code scales it (largest
    // magnitude 127).
    bcfl_protos::signed_bytes::pack(&sketch).ok_or_else(|| {
        anyhow!(
            "the sketch in {} has a value outside -128..=127 (one byte each on the ledger; members scale theirs to a largest magnitude of 127)",
            path.display()
        )
    })
}

pub(crate) async fn commit(ctx: &Context, args: CommitArgs) -> anyhow::Result<ExitCode> {
    let consortium = consortium_of(ctx).await?;
    let round = match args.round {
        Some(r) => r,
        None if consortium.current_round > 0 => consortium.current_round,
        None => bail!("no round has been opened yet"),
    };
    let sketch = match (&args.sketch, consortium.get_params().sketch_after_commit) {
        (Some(path), false) => read_sketch(path, consortium.get_params())?,
        (None, true) => Vec::new(),
        (None, false) => bail!("--sketch FILE is required: the consortium's commitments carry it"),
        (Some(_), true) => bail!(
            "the consortium's sketches come after the commitments: leave --sketch out and reveal \
             it with `bcfl round reveal` once the round is sealed"
        ),
    };
    let coordinates: Vec<i64> = match &args.coordinates {
        Some(path) => read_integers(path, "coordinates")?,
        None => Vec::new(),
    };
    let expected = consortium.get_params().coordinate_samples as usize;
    if coordinates.len() != expected {
        bail!(
            "{} {} sampled coordinates; the consortium requires exactly {expected} (--coordinates)",
            match &args.coordinates {
                Some(path) => format!("{} has", path.display()),
                None => "the commitment has".to_owned(),
            },
            coordinates.len()
        );
    }
    let coordinates = Coordinates::quantize(&coordinates);
    let (sha256, size) = file_sha256(&args.blob)?;
    let mut payload = pb::BcflPayload::new();
    payload.set_commit_update(pb::CommitUpdate {
        round,
        update_sha256: sha256,
        size_bytes: size,
        num_samples: args.samples,
        loss_micro: fixed::parse_micro(&args.loss).context("--loss")?,
        norm_micro: fixed::parse_micro_unsigned(&args.norm).context("--norm")?,
        sketch,
        coordinate_step_nano: coordinates.step_nano(),
        coordinate_steps: coordinates.packed_steps(),
        blob_uri: args.blob_uri,
        base_round: args.base_round.unwrap_or(0),
        ..Default::default()
    });
    submit(ctx, payload, &args.wait).await
}

/// Parses `TO:BYTES_PER_SEC:RTT_US[:PROBE_BYTES]`.
fn parse_link(ctx: &Context, text: &str, probe_bytes: u64) -> anyhow::Result<pb::LinkMeasurement> {
    let parts: Vec<&str> = text.split(':').collect();
    if !(3..=4).contains(&parts.len()) {
        bail!("--link {text:?}: expected TO:BYTES_PER_SEC:RTT_US[:PROBE_BYTES]");
    }
    let number = |i: usize, what: &str| -> anyhow::Result<u64> {
        parts[i]
            .parse()
            .with_context(|| format!("--link {text:?}: {what} {:?} is not an integer", parts[i]))
    };
    Ok(pb::LinkMeasurement {
        to: ctx.public_key(parts[0])?,
        bytes_per_sec: number(1, "bytes per second")?,
        rtt_us: number(2, "round-trip time")?,
        probe_bytes: if parts.len() == 4 {
            number(3, "probe size")?
        } else {
            probe_bytes
        },
        ..Default::default()
    })
}

pub(crate) async fn bandwidth(ctx: &Context, cmd: BandwidthCommand) -> anyhow::Result<ExitCode> {
    let BandwidthCommand::Report {
        epoch,
        probe_bytes,
        links,
        wait,
    } = cmd;
    let measurements = links
        .iter()
        .map(|l| parse_link(ctx, l, probe_bytes))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let epoch = match epoch {
        Some(e) => e,
        None => consortium_of(ctx).await?.current_round,
    };
    let mut payload = pb::BcflPayload::new();
    payload.set_report_bandwidth(pb::ReportBandwidth {
        epoch,
        measurements: measurements.into(),
        ..Default::default()
    });
    submit(ctx, payload, &wait).await
}

pub(crate) async fn aggregate(ctx: &Context, cmd: AggregateCommand) -> anyhow::Result<ExitCode> {
    let AggregateCommand::Commit {
        round,
        model,
        blob_uri,
        contributors,
        excluded,
        rule,
        wait,
    } = cmd;
    let consortium = consortium_of(ctx).await?;
    let round = round.unwrap_or(consortium.current_round);
    let verdict = ctx.reader()?.verdict(round, None).await?;
    let keys = |given: &[String], from_verdict: Option<&[String]>| -> anyhow::Result<Vec<String>> {
        if given.is_empty() {
            Ok(from_verdict.map(<[String]>::to_vec).unwrap_or_default())
        } else {
            given.iter().map(|k| ctx.public_key(k)).collect()
        }
    };
    let contributors = keys(&contributors, verdict.as_ref().map(|v| v.get_accepted()))?;
    let excluded = keys(&excluded, verdict.as_ref().map(|v| v.get_excluded()))?;
    if contributors.is_empty() {
        bail!("round {round} has no verdict yet: evaluate it first or pass --contributors");
    }
    let (sha256, size) = file_sha256(&model)?;
    let mut payload = pb::BcflPayload::new();
    payload.set_commit_aggregate(pb::CommitAggregate {
        round,
        model_sha256: sha256,
        contributors: contributors.into(),
        rule: rule.map_or(
            consortium.get_params().aggregation_rule,
            params::Rule::aggregation_rule,
        ),
        excluded: excluded.into(),
        size_bytes: size,
        blob_uri,
        ..Default::default()
    });
    submit(ctx, payload, &wait).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct RoundCli {
        #[command(subcommand)]
        command: RoundCommand,
    }

    #[derive(Parser)]
    struct CommitCli {
        #[command(flatten)]
        commit: CommitArgs,
    }

    fn open(args: &[&str]) -> Result<RoundCommand, clap::Error> {
        let mut argv = vec!["x", "open"];
        argv.extend_from_slice(args);
        RoundCli::try_parse_from(argv).map(|c| c.command)
    }

    fn schedule(args: &[&str]) -> anyhow::Result<(pb::RoundSync, u32, u32, pb::RoundMode)> {
        let RoundCommand::Open {
            mode,
            sync,
            buffer,
            max_staleness,
            ..
        } = open(args)?
        else {
            panic!("not an open command");
        };
        let (sync, buffer, staleness) = round_schedule(sync, buffer, max_staleness)?;
        Ok((sync, buffer, staleness, mode.to_proto()))
    }

    #[test]
    fn round_open_defaults_to_a_synchronous_serverless_round() {
        assert_eq!(
            schedule(&[]).unwrap(),
            (pb::RoundSync::SYNCHRONOUS, 0, 0, pb::RoundMode::SERVERLESS)
        );
        assert_eq!(
            schedule(&["--mode", "server", "--sync", "synchronous"]).unwrap(),
            (pb::RoundSync::SYNCHRONOUS, 0, 0, pb::RoundMode::SERVER)
        );
    }

    #[test]
    fn round_open_takes_a_buffer_and_a_staleness_bound() {
        assert_eq!(
            schedule(&[
                "--sync",
                "buffered-async",
                "--buffer",
                "3",
                "--max-staleness",
                "2"
            ])
            .unwrap(),
            (
                pb::RoundSync::BUFFERED_ASYNC,
                3,
                2,
                pb::RoundMode::SERVERLESS
            )
        );
        assert_eq!(
            schedule(&["--sync", "buffered-async", "--buffer", "1"]).unwrap(),
            (
                pb::RoundSync::BUFFERED_ASYNC,
                1,
                0,
                pb::RoundMode::SERVERLESS
            )
        );
        let err = schedule(&["--sync", "buffered-async"]).unwrap_err();
        assert!(err.to_string().contains("needs --buffer K"), "{err}");
        let err = schedule(&["--sync", "buffered-async", "--buffer", "0"]).unwrap_err();
        assert!(err.to_string().contains("needs --buffer K"), "{err}");
        let err = schedule(&["--buffer", "2"]).unwrap_err();
        assert!(
            err.to_string().contains("buffered-async rounds only"),
            "{err}"
        );
        let err = schedule(&["--max-staleness", "1"]).unwrap_err();
        assert!(
            err.to_string().contains("buffered-async rounds only"),
            "{err}"
        );
        assert!(open(&["--sync", "async"]).is_err());
        assert!(open(&["--mode", "p2p"]).is_err());
    }

    #[test]
    fn round_open_schedules_pass_the_processor_payload_rules() {
        let (sync, buffer_size, max_staleness, mode) = schedule(&[
            "--sync",
            "buffered-async",
            "--buffer",
            "256",
            "--max-staleness",
            "16",
        ])
        .unwrap();
        let mut payload = pb::BcflPayload::new();
        payload.set_open_round(pb::OpenRound {
            round: 2,
            parent_model_sha256: "ab".repeat(32),
            aggregator: format!("02{}", "1".repeat(64)),
            mode,
            sync,
            buffer_size,
            max_staleness,
            ..Default::default()
        });
        bcfl_processor::Action::from_proto(&payload).unwrap();
        payload.mut_open_round().max_staleness = 17;
        let err = bcfl_processor::Action::from_proto(&payload).unwrap_err();
        assert_eq!(
            err.to_string(),
            "open_round.max_staleness: must be in 0..=16, got 17"
        );
    }

    #[test]
    fn commit_takes_a_base_round() {
        let base = ["x", "--blob", "u.bin", "--samples", "5", "--loss", "-0.5"];
        let rest = ["--norm", "1.5", "--sketch", "s.txt"];
        let argv: Vec<&str> = base.iter().chain(&rest).copied().collect();
        let parsed = CommitCli::try_parse_from(&argv).unwrap().commit;
        assert_eq!((parsed.round, parsed.base_round), (None, None));
        let mut with_base = argv.clone();
        with_base.extend(["--round", "4", "--base-round", "3"]);
        let parsed = CommitCli::try_parse_from(&with_base).unwrap().commit;
        assert_eq!((parsed.round, parsed.base_round), (Some(4), Some(3)));
        let mut bad = argv;
        bad.extend(["--base-round", "-1"]);
        assert!(CommitCli::try_parse_from(&bad).is_err());
    }
}
