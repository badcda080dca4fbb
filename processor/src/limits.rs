//! Bounds on every count and size the family accepts.
//!
//! Every list and string in a payload, and every container in state, has an upper bound, so a
//! transaction's cost is bounded and state cannot grow without limit. Payload parsing
//! ([`crate::payload`]) and the rules ([`crate::rules`]) enforce these; clients may use them to
//! check their input early.

/// Fixed-point scale of `*_ppm` and `*_micro` fields: 1.0 is `1_000_000`.
pub const PPM: u32 = 1_000_000;

/// Most admin keys a consortium may name.
pub const MAX_ADMINS: usize = 32;

/// Most members the registry holds (active and suspended together).
pub const MAX_MEMBERS: usize = 1024;

/// Most commitments one round accepts: every member (so that a consortium of [`MAX_MEMBERS`]
/// can train in one round; a sampling consortium draws fewer).
pub const MAX_ROUND_COMMITTERS: usize = MAX_MEMBERS;

/// Largest `max_staleness` of a `BUFFERED_ASYNC` round: an update may be trained from the parent
/// model of a round at most this many rounds before the round it is committed to.
pub const MAX_STALENESS: u32 = 16;

/// Longest member name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Longest model id (`ConsortiumParams.model_id`), in characters.
pub const MAX_MODEL_ID_CHARS: usize = 128;

/// Longest endpoint or blob URI, in characters.
pub const MAX_URI_CHARS: usize = 512;

/// Longest suspension reason, in characters.
pub const MAX_REASON_CHARS: usize = 256;

/// Longest update sketch (`ConsortiumParams.sketch_length` is at most this).
pub const MAX_SKETCH_LENGTH: usize = 4096;

/// Most sampled coordinates a commitment may carry (`ConsortiumParams.coordinate_samples` is at
/// most this).
pub const MAX_COORDINATE_SAMPLES: usize = 4096;

/// Most link measurements in one `ReportBandwidth`.
pub const MAX_MEASUREMENTS: usize = 256;

/// Samples kept per directed link; older samples are dropped.
pub const LINK_SAMPLES_KEPT: usize = 16;

/// Largest blob (update or model) size a commitment may declare: 1 TiB.
pub const MAX_BLOB_BYTES: u64 = 1 << 40;

/// Largest sample count a commitment may declare.
pub const MAX_NUM_SAMPLES: u64 = 1_000_000_000_000;

/// Largest measured bandwidth: 1 TB/s.
pub const MAX_BYTES_PER_SEC: u64 = 1_000_000_000_000;

/// Largest round-trip time: one hour, in microseconds.
pub const MAX_RTT_US: u64 = 3_600_000_000;

/// Largest probe size: 1 TiB.
pub const MAX_PROBE_BYTES: u64 = 1 << 40;

/// Most PageRank iterations a consortium may configure.
pub const MAX_PAGERANK_ITERATIONS: u32 = 10_000;

/// Largest threshold, `k` or radius in ppm (100.0).
pub const MAX_THRESHOLD_PPM: u32 = 100_000_000;

/// Most features one anomaly method may use (of the eleven).
pub const MAX_FEATURES: usize = 7;

/// Largest near-duplicate distance a consortium may configure (`DuplicateConfig`), ppm: a
/// cosine distance of 1, orthogonal sketches. Beyond it, opposite updates would be duplicates.
pub const MAX_DUPLICATE_DISTANCE_PPM: u32 = 1_000_000;

/// Largest norm ratio the unchanged-update method may use (`UnchangedConfig`), ppm: half the
/// round's median norm. Beyond it the method would no longer single out members that did not
/// train but the lower half of those that did.
pub const MAX_UNCHANGED_RATIO_PPM: u32 = 500_000;

/// Largest distance to the previous change the resent-change method may use (`ResentConfig`),
/// ppm: half that change's length. Beyond it the method would take in members that trained.
pub const MAX_RESENT_DISTANCE_PPM: u32 = 500_000;

/// Largest cosine with its own previous change the inconsistent-change method may require
/// (`InconsistentConfig`), ppm: one half. Beyond it the method would take in members that
/// trained, whose consecutive changes measured 0.44 and up on the attack benchmark.
pub const MAX_INCONSISTENT_COSINE_PPM: u32 = 500_000;

/// Smallest cumulative sketch distance the opposed-change method may flag at (`OpposedConfig`),
/// ppm: 1, sums orthogonal to the consensus. Below it the method would take in members whose
/// sums merely lean away from the consensus, as honest members' with a rare class do (up to
/// 1.36 measured on the attack benchmark with Dirichlet 0.1 shards).
pub const MIN_OPPOSED_DISTANCE_PPM: u32 = 1_000_000;

/// Largest cumulative sketch distance the opposed-change method may flag at, ppm: 2, sums
/// pointing exactly against the consensus (the largest cosine distance).
pub const MAX_OPPOSED_DISTANCE_PPM: u32 = 2_000_000;

/// Largest move response the ascent method may allow (`AscentConfig`), ppm: one half. Beyond it
/// the method would let through members whose changes mostly climb their own loss.
pub const MAX_ASCENT_RESPONSE_PPM: u32 = 500_000;

/// Farthest from 0 the mislabelled-change method's limit may lie (`MislabelledConfig`), ppm:
/// one half either way. Above it the method would exclude honest members whose changes are
/// barely aligned with the reference; below it, only members training on wrong labels alone.
pub const MAX_MISLABELLED_MARGIN_PPM: i32 = 500_000;

/// Smallest residual the oversized-update method may flag at (`OversizedConfig`), ppm of
/// natural-log units: ln 2, a norm twice what the round's line predicts for the member's sample
/// count. Below it the method would take in honest members, whose residuals reached 1.20 on the
/// attack benchmark with Dirichlet 0.1 shards.
pub const MIN_OVERSIZED_RESIDUAL_PPM: u32 = 693_147;

/// Largest residual the oversized-update method may flag at, ppm: 10, a norm e^10 (22,000)
/// times the line's, beyond any scaling worth catching.
pub const MAX_OVERSIZED_RESIDUAL_PPM: u32 = 10_000_000;

/// Smallest cosine with the others' mean update the mean-copy method may flag at
/// (`MeanCopyConfig`), ppm: one half. Below it the method would take in honest members, whose
/// cosines with the others' mean reached 0.93 on the attack benchmark.
pub const MIN_MEAN_COPY_COSINE_PPM: u32 = 500_000;

/// Largest verifier committee a consortium may configure.
pub const MAX_COMMITTEE: usize = 16;

/// How far two ends' reports of one link may differ for the graph evidence to use the link when
/// the consortium sets no `link_agreement_ppm`: a factor of 4.
pub const DEFAULT_LINK_AGREEMENT_PPM: u32 = 4_000_000;
