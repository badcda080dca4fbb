//! Per-member features computed from a round's on-chain evidence.
//!
//! Members are the round's committers in key order; each feature is one `f64` per member,
//! computed from integer state values with a fixed order of operations:
//!
//! | feature | value |
//! | --- | --- |
//! | `UPDATE_NORM` | `norm_micro / 1e6` ([`fixed::micro_unsigned_to_f64`]) |
//! | `SKETCH_COSINE_DISTANCE` | `1 - cos(sketch, coordinate-wise median sketch)`, in [0, 2]; 1 when either vector is zero |
//! | `CUMULATIVE_SKETCH_COSINE_DISTANCE` | `1 - cos(sum, centre)`: the member's sketches summed over the earlier evaluated rounds it committed to (its [`pb::SketchSum`]) plus this one, against the consensus of those same rounds (the accepted members' mean sketch of each, summed: the sum's `consensus`) plus this round's median sketch ([`cumulative_centres`]) |
//! | `NEAREST_SKETCH_COSINE_DISTANCE` | `min_j 1 - cos(sketch, sketch_j)` over the other committers `j` ([`nearest_sketch_cosine_distances`]); 1 without another committer. Near 0 for members that send one update together (colluders crafting from the honest updates), never for honest members training on their own shards (FoolsGold's similarity signal); what the duplicate method ([`super::evaluate()`]) compares with its distance |
//! | `COORDINATE_SIGN_BALANCE` | `1 + (#above - #below) / K` over the `K` sampled coordinates of the round's commitments ([`pb::Commitment::coordinate_steps`], read back as nano-units by [`Coordinates::nano`]): twice the share of the member's values above the coordinate-wise median of all committers' values, ties counting half ([`coordinate_sign_balances`]); in [0, 2], 1 when the round carries no coordinates |
//! | `PREVIOUS_CHANGE_DISTANCE` | `|c - m| / |m|` over the sampled coordinates: the member's change `c` against `m`, the previous round's sample-weighted mean change of the members its verdict accepted (the consensus record's `previous_change`, [`weighted_mean_coordinates`]); 1 when the record is not of the round before or `m` is zero ([`previous_change_distances`]) |
//! | `OWN_CHANGE_COSINE` | `cos(c, p)` over the sampled coordinates: the member's change `c` against `p`, its own change in its commitment to the last earlier round it had evaluated ([`pb::SketchHistory::previous`], [`previous_rounds`]); 1 when it has none or either change is zero ([`own_change_cosines`]) |
//! | `MOVE_RESPONSE` | `sum (c_r - c_{r-1}) . m_{r-1} / sum |c_r - c_{r-1}| |m_{r-1}|` over the sampled coordinates and the rounds `r` the member committed to after committing to `r - 1`: how its change responds to the model's move `m_{r-1}` (the consensus record's `previous_change`); the earlier rounds' sums are its [`pb::SketchSum`]'s `response_dot` and `response_weight` ([`response_terms`], [`move_responses`]); in [-1, 1], 0 without such a round. With the ascent method's `leave_one_out`, `m_{r-1}` is the others' move wherever the member's own change is part of it ([`pb::SketchSum::last_kept`]) |
//! | `REFERENCE_MARGIN` | the mean over the member's evaluated rounds (this one included) of `cos(c, r)` over the sampled coordinates the reference covers, in ppm rounded half away from zero: its change `c` against `r`, the consortium's reference direction at the same positions (positions outside the reference's tensors, marked [`OUTSIDE_REFERENCE`], left out of both) ([`pb::SketchHistory::reference_steps`], from `MislabelledConfig`); the earlier rounds' sum and count are its [`pb::SketchSum`]'s `margin_sum_ppm` and `margin_rounds` ([`margin_terms`], [`reference_margins`]); in [-1, 1], 0 without a reference or a round where both are non-zero |
//! | `TRAINING_LOSS` | `loss_micro / 1e6` ([`fixed::micro_to_f64`]) |
//! | `SAMPLE_COUNT` | `num_samples` |
//! | `OTHERS_MEAN_COSINE` | `cos(s_i, T - w_i s_i)`, `T = sum_j w_j s_j`, `w_j = norm_j / |s_j|`: the member's sketch against the others' mean update as their sketches tell it ([`others_mean_cosines`]); 0 when either is zero; computed when a method asks |
//! | `SAMPLE_NORM_RESIDUAL` | `ln(norm) - a - b ln(num_samples)`, the line fitted to the round's committers with a non-zero norm by Siegel's repeated median, its slope held within [0, 1] ([`sample_norm_residuals`], [`super::stats::ln`], [`super::stats::repeated_median_line`]); 0 for a zero norm; computed when a method asks (quadratic in the committers) |
//! | `BANDWIDTH_IN` | median over confirmed links into the member ([`bandwidth_edges`]) of each link's median `bytes_per_sec`; 0 without any |
//! | `BANDWIDTH_OUT` | the same over links out of the member (equal to `BANDWIDTH_IN`, as confirmed links are symmetric) |
//! | `PAGERANK_SCORE` | the member's PageRank (see [`super::pagerank`]) |
//!
//! Each column also has a scale floor ([`scale_floor`]), the smallest spread the z-score and
//! DBSCAN may divide its deviations by. It is 0 for every feature except two.
//! `PREVIOUS_CHANGE_DISTANCE` has a fifth of the column's median: an honest member's change
//! differs from the previous global change by about its own size (honest round medians 0.73 to
//! 2.2 on the attack benchmark), a resent change not at all, so a resent change at 0 scores 5
//! whatever the round's level, and an honest member must lie 70 % of the median from it to
//! score 3.5. A fixed floor of 0.25 (the first one) missed every stale rider of the second
//! round at twenty members, whose honest median was 0.86 (score 3.44); on this feature's
//! z-score alone, replayed over the IID benchmark's traces, a fixed 0.125 flagged six honest
//! member-rounds of 14,400, where the relative floor flags none.
//! `COORDINATE_SIGN_BALANCE`'s honest values scatter by construction: with `K` sampled
//! coordinates an honest member's balance is `1 ± 1/√K` (binomial), and on the attack benchmark
//! `1 ± 0.073` at `K = 256` (1,458 honest member-rounds: members' updates are correlated). The
//! MAD over ten members often comes out below that (`MAD / 0.6745` under 0.046 in a quarter of
//! the rounds, where the relative floor's 0.05 takes over), so honest members 0.18-0.29 from 1
//! scored 3.5-4.4 and were flagged, in most cells of that benchmark. The floor is `2/√K` (0.125
//! at 256): an honest member must then lie 0.44 from 1 to be flagged, which none of those 1,458
//! did, while the crafted updates the feature is for sit at 0-0.6 (ALIE, min-max, min-sum).
//!
//! Why a previous-change feature: a stale rider trains nothing and resends the previous round's
//! change of the global model. Under FedAvg that change *is* the sample-weighted mean of the
//! changes the previous verdict accepted, so where members sample the same coordinates every
//! round (they do: the positions depend on no round, `bcfl_fed::sketch::coordinates`) the
//! processor can hold the mean at those positions and see the resent change land on it, up to
//! nano-unit rounding; an honest member's change differs from it by about its own size. No
//! sketch feature can: each round's sketch uses that round's projection, and a stale update
//! points along the consensus, where the sketch distances call it a good member. Under another
//! rule (Krum, the median) the global change is not that mean and the feature only measures
//! closeness to it.
//!
//! The cosine uses exact integer arithmetic up to one final division: the median sketch is kept
//! doubled (the sum of the two middle values for an even count), dot products and squared norms
//! are `i128` sums, and `cos = dot / (sqrt(|s|^2) * sqrt(|m|^2))`. A sketch shorter than the
//! others counts as zero-padded. Cumulative sums are `i64` and every integer operation saturates,
//! so absurd values give a wrong but still deterministic answer, never an overflow.
//!
//! Why a cumulative feature: once training has converged, an honest member's update is mostly
//! the noise of its own shard, and one round's sketches of honest members scatter nearly as
//! widely as an attacker's random or negated one. Summed over rounds, honest updates add up
//! along the common descent direction while noise grows only as the square root of the number
//! of rounds; a sign flipper's sum points the opposite way and a noise sender's stays orthogonal,
//! so a gap stays open after one round's has closed. The centre is the consensus of the members
//! earlier verdicts accepted, over the rounds the member itself committed to
//! ([`cumulative_centres`]), not the median of everybody's sums: with 30 % noise senders the
//! median of the sums is pulled towards them, and measuring against the consensus raised the
//! ensemble's F1 for noise at 30 % from 0.935 / 0.831 to 0.989 / 0.966 (10 / 20 members, 5
//! seeds of the attack benchmark). Measured on the attack benchmark (10
//! members, 3 noise senders, round 6, seeds 0-2): cumulative distances 0.37-0.57 for honest
//! members against 0.78-1.01 for the noise senders, where one round's distances overlap
//! (0.56-0.81 against 0.58-0.84). Members sketch each round with that round's projection; the
//! client's `bcfl_fed::sketch` explains why a per-round projection suits the sum.
//!
//! Why a coordinate feature: the colluding attacks that defeat distance-based defences (ALIE,
//! min-max, min-sum) all commit `mean - gamma * std` of the honest updates, with `std` the
//! coordinate-wise standard deviation. That point sits at an honest distance from everyone, so
//! neither a sketch distance nor a norm can single it out, and a random projection of its
//! deviation `-gamma * std` is as random as an honest member's. Coordinate by coordinate,
//! though, it lies below the centre *everywhere*, where an honest update lies above in about
//! half of the coordinates and below in the other half. So a commitment carries the change at
//! `coordinate_samples` positions drawn once with a fixed seed, the same every round (the
//! client's `bcfl_fed::sketch::coordinates`, `COORDINATE_SEED`), and the feature counts signs
//! against the coordinate-wise median: honest members score about `1 ± 1/√K`, a crafted update
//! near 0. The count uses
//! exact integer comparisons (the median doubled, as above), so it is deterministic. The
//! balance is centred on 1 rather than 0 on purpose: the modified z-score's floor (5 % of the
//! median's magnitude, [`super::stats::robust_scale`]) is then 0.05, close to the count's own
//! sampling error at 256 coordinates (0.0625), so that ten members' median absolute deviation,
//! itself noisy, cannot shrink the scale far below what chance alone gives.
//!
//! Why an own-change feature: with shards as skewed as Dirichlet 0.1 (most members hold one or
//! two classes) an honest update can lie as far out as a noise sender's on every feature above,
//! since honest members differ as much from each other as from noise. What a member training on
//! a shard of its own does not do is change direction from round to round: its shard is the
//! same, so its change at the sampled positions points the way its previous one did (cosine
//! 0.44 and up on the attack benchmark's classic attacks with Dirichlet 0.1 shards at 20
//! members, 0.57 and up at 10, at 256 coordinates, rounds 2-6), where a fresh random update lies
//! at `0 ± 1/√K` (noise senders at -0.18 to 0.20 there). The
//! commitment compared with is the member's own last evaluated one, read from state by its
//! sketch sum's `last_round`; a member's first round has none.
//!
//! Why a move-response feature: a sign flipper keeps its direction too, and with Dirichlet 0.1
//! shards its negated update is what a member holding the other classes could send, so it lies
//! inside the honest spread on every feature above. What gives it away is how its change
//! responds when the model moves. A member descending its own loss `f` from `w` changes the
//! model by `d(w)`, and from the next round's model `w + m` by `d(w + m) ≈ d(w) - η H m`, `H`
//! the curvature of `f`: so `(d(w + m) - d(w)) . m ≈ -η mᵀ H m ≤ 0` wherever `f` is convex
//! (a softmax head's cross-entropy is). For gradient steps this needs no approximation: a step
//! map `T` on a convex smooth loss is non-expansive, `(T(w') - T(w)) . (w' - w) ≤ |w' - w|²`,
//! so the change `T(w) - w` satisfies `(d(w') - d(w)) . (w' - w) ≤ 0`. A sign flipper sends
//! `-d`, whose response has the opposite sign, whatever its shard. One round's response is noisy
//! at 256 coordinates (mini-batch order, the rounding of the steps), so the feature sums the dot
//! products and the products of the lengths over the member's rounds, weighting each round by
//! how far the model moved: on the attack benchmark's head (10 and 20 members, seeds 0-2 and
//! 100-102, IID and Dirichlet 0.1, rounds 2-6, outside the ledger) honest members lay at -0.93
//! to -0.016 (1,800 member-rounds), label flippers (descent steps on labels of their own) below 0
//! in all but 2, sign-flipped updates at 0.016 to 0.93, where one round's cosine put 25 honest
//! member-rounds above 0 (3 above 0.15) and 189 flipped ones at 0.15 or below. The argument
//! needs a convex loss: members fine-tuning LoRA adapters with AdamW measured below 0 sign
//! flipper included (docs/anomaly-detection.md, "Steps that climb"). Part of that is the
//! member's own previous change, `n_i / S` of `m`: where changes vary from round to round more
//! than they respond to the model, it adds about `-(n_i / S) |c_{r-1}|²` to every member's dot
//! product. [`pb::AscentConfig::leave_one_out`] compares with the others' move instead,
//! `(S m - n_i c_{r-1}) / (S - n_i)` ([`others_move`]), which needs each entry to record whether
//! the last verdict accepted it ([`pb::SketchSum::last_kept`], two bytes in state).

use bcfl_protos::bcfl as pb;
use bcfl_protos::signed_bytes;

use super::stats::median;
use crate::fixed;
use crate::limits::DEFAULT_LINK_AGREEMENT_PPM;
use crate::statistics::Coordinates;

/// The median `bytes_per_sec` of a link's samples, `None` when it has no positive sample median.
pub fn link_bandwidth(link: &pb::Link) -> Option<f64> {
    let samples: Vec<f64> = link
        .samples
        .iter()
        .map(|s| s.bytes_per_sec as f64)
        .collect();
    let m = median(&samples);
    (m > 0.0).then_some(m)
}

/// The reported links among `members` (sorted keys) as `(from, to, bandwidth)` index triples,
/// in (from, to) order, each as its reporter `from` measured it. Links with an endpoint outside
/// `members` or no bandwidth are left out. The verdict's evidence is [`bandwidth_edges`].
pub fn reported_edges(members: &[String], links: &[pb::Link]) -> Vec<(usize, usize, f64)> {
    let index = |key: &str| members.binary_search_by(|m| m.as_str().cmp(key)).ok();
    let mut edges: Vec<(usize, usize, f64)> = links
        .iter()
        .filter_map(|l| Some((index(&l.from)?, index(&l.to)?, link_bandwidth(l)?)))
        .collect();
    edges.sort_by_key(|e| (e.0, e.1));
    edges
}

/// The links among `members` that both ends confirm, as `(from, to, bandwidth)` index triples
/// in (from, to) order: a pair `{i, j}` counts only when `i` reported `i -> j` and `j` reported
/// `j -> i`, and the larger of the two medians is at most `agreement_ppm / 10^6` times the
/// smaller (`0`: [`DEFAULT_LINK_AGREEMENT_PPM`]); it then appears in both directions with the
/// smaller median. So one member alone can neither create a link between others nor
/// raise one of its own: it can only leave out (or lower, within the agreement factor) links it
/// is an end of, and each such link weighs on it exactly as on its peer (see
/// `docs/transaction-family.md`, "Graph evidence").
pub fn bandwidth_edges(
    members: &[String],
    links: &[pb::Link],
    agreement_ppm: u32,
) -> Vec<(usize, usize, f64)> {
    let factor = match agreement_ppm {
        0 => DEFAULT_LINK_AGREEMENT_PPM,
        ppm => ppm,
    } as f64;
    let reported: std::collections::BTreeMap<(usize, usize), f64> = reported_edges(members, links)
        .into_iter()
        .map(|(i, j, b)| ((i, j), b))
        .collect();
    let mut edges = Vec::new();
    for (&(i, j), &forward) in &reported {
        if i >= j {
            continue;
        }
        let Some(&backward) = reported.get(&(j, i)) else {
            continue;
        };
        let (low, high) = if forward <= backward {
            (forward, backward)
        } else {
            (backward, forward)
        };
        if high * 1e6 <= low * factor {
            edges.push((i, j, low));
            edges.push((j, i, low));
        }
    }
    edges.sort_by_key(|e| (e.0, e.1));
    edges
}

/// The median link bandwidth into (`incoming`) or out of each of `n` members; 0 without a link.
pub fn bandwidth_feature(n: usize, edges: &[(usize, usize, f64)], incoming: bool) -> Vec<f64> {
    let mut per_member: Vec<Vec<f64>> = vec![Vec::new(); n];
    for &(from, to, b) in edges {
        let member = if incoming { to } else { from };
        if let Some(values) = per_member.get_mut(member) {
            values.push(b);
        }
    }
    per_member.iter().map(|values| median(values)).collect()
}

/// The coordinate-wise median of `vectors`, doubled so that it stays an integer (the sum of the
/// two middle values for an even count). Shorter vectors count as zero-padded.
fn doubled_median<V: AsRef<[i64]>>(vectors: &[V]) -> Vec<i128> {
    let len = vectors.iter().map(|v| v.as_ref().len()).max().unwrap_or(0);
    (0..len)
        .map(|k| {
            let mut column: Vec<i128> = vectors
                .iter()
                .map(|v| i128::from(v.as_ref().get(k).copied().unwrap_or(0)))
                .collect();
            column.sort_unstable();
            let mid = column.len() / 2;
            if column.len() % 2 == 1 {
                2 * column[mid]
            } else {
                column[mid - 1] + column[mid]
            }
        })
        .collect()
}

/// The cosine distance of every vector to the coordinate-wise median of all of them, in
/// [0, 2]; 1 when either is zero. Integer arithmetic (saturating `i128`) up to one division.
fn cosine_distances_to_median(vectors: &[Vec<i64>]) -> Vec<f64> {
    cosine_distances_to(vectors, &doubled_median(vectors))
}

/// The cosine distance of every vector to `centre`, in [0, 2]; 1 when either is zero.
fn cosine_distances_to(vectors: &[Vec<i64>], centre: &[i128]) -> Vec<f64> {
    let centre_sq = squared_norm(centre);
    vectors
        .iter()
        .map(|v| cosine_distance(v, centre, centre_sq))
        .collect()
}

/// `|v|^2` (saturating).
fn squared_norm(v: &[i128]) -> i128 {
    v.iter()
        .fold(0i128, |acc, x| acc.saturating_add(x.saturating_mul(*x)))
}

/// The cosine distance of `v` to `centre` (whose squared norm is `centre_sq`) over the centre's
/// length, in [0, 2]; 1 when either is zero.
fn cosine_distance(v: &[i64], centre: &[i128], centre_sq: i128) -> f64 {
    let (mut dot, mut sq) = (0i128, 0i128);
    for (k, c) in centre.iter().enumerate() {
        let x = i128::from(v.get(k).copied().unwrap_or(0));
        dot = dot.saturating_add(x.saturating_mul(*c));
        sq = sq.saturating_add(x.saturating_mul(x));
    }
    if sq == 0 || centre_sq == 0 {
        return 1.0;
    }
    let cos = dot as f64 / ((sq as f64).sqrt() * (centre_sq as f64).sqrt());
    (1.0 - cos).clamp(0.0, 2.0)
}

/// The dot product of two sketches, exact up to saturation at the ends of `i128`.
fn exact_dot(a: &[i32], b: &[i32]) -> i128 {
    a.iter().zip(b).fold(0i128, |acc, (x, y)| {
        acc.saturating_add(i128::from(*x).saturating_mul(i128::from(*y)))
    })
}

/// The sketches as `i16` when every value fits and no dot product of two of them can leave
/// `i32` (`max |v|^2 x length <= i32::MAX`, as for the client's sketches: values within 127,
/// at most 4096 of them), so that [`small_dot`] computes exactly what [`exact_dot`] does.
fn small_sketches(sketches: &[&[i32]]) -> Option<Vec<Vec<i16>>> {
    let largest = sketches
        .iter()
        .flat_map(|s| s.iter())
        .map(|v| v.unsigned_abs())
        .max()
        .unwrap_or(0);
    let length = sketches.iter().map(|s| s.len()).max().unwrap_or(0);
    let fits = largest <= i16::MAX as u32
        && u64::from(largest) * u64::from(largest) * length as u64 <= i32::MAX as u64;
    fits.then(|| {
        sketches
            .iter()
            .map(|s| s.iter().map(|&v| v as i16).collect())
            .collect()
    })
}

/// The dot product of two sketches of [`small_sketches`]: no overflow is possible, and the
/// compiler vectorizes the loop (16-bit multiplies summed in 32 bits).
fn small_dot(a: &[i16], b: &[i16]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum()
}

/// Calls `visit(i, j, cosine)` for every pair `i < j` of `sketches`, `cosine` `None` where
/// either is zero. Integer dot products up to one division per pair: in `i32` over `i16` copies
/// when no product can overflow (the client's sketches, the fast path), else saturating `i128`,
/// with the same results.
fn for_each_sketch_pair(sketches: &[&[i32]], mut visit: impl FnMut(usize, usize, Option<f64>)) {
    let n = sketches.len();
    let squares: Vec<i128> = sketches.iter().map(|s| exact_dot(s, s)).collect();
    let small = small_sketches(sketches);
    for i in 0..n {
        for j in i + 1..n {
            let dot = match &small {
                Some(small) => i128::from(small_dot(&small[i], &small[j])),
                None => exact_dot(sketches[i], sketches[j]),
            };
            let cosine = (squares[i] != 0 && squares[j] != 0)
                .then(|| dot as f64 / ((squares[i] as f64).sqrt() * (squares[j] as f64).sqrt()));
            visit(i, j, cosine);
        }
    }
}

/// For every sketch, the cosine distance to the closest other sketch, in [0, 2] (pairs where
/// either is zero count as 1; 1 for a lone sketch). Integer dot products up to one division per
/// pair, `n (n - 1) / 2` pairs, so [`MemberData`](super::MemberData) computes it only when a
/// method asks for it.
pub fn nearest_sketch_cosine_distances(sketches: &[&[i32]]) -> Vec<f64> {
    let mut nearest = vec![f64::INFINITY; sketches.len()];
    for_each_sketch_pair(sketches, |i, j, cosine| {
        let distance = cosine.map_or(1.0, |cos| (1.0 - cos).clamp(0.0, 2.0));
        nearest[i] = nearest[i].min(distance);
        nearest[j] = nearest[j].min(distance);
    });
    // A lone sketch has no neighbour.
    nearest
        .into_iter()
        .map(|d| if d.is_finite() { d } else { 1.0 })
        .collect()
}

/// How much a round's sketches agree with each other: each sketch's median cosine with the
/// other non-zero sketches, and the median of those (upper medians). Not a feature of any
/// member: a statistic of the round, which tells whether the members' data is alike (their
/// updates point the same way, as with IID shards) or skewed (each holds classes of its own),
/// and which fewer than half the sketches cannot carry outside the range of the others'
/// cosines (docs/anomaly-detection.md, "Skewed shards"). `None` with fewer than two non-zero
/// sketches.
pub fn sketch_agreement(sketches: &[&[i32]]) -> Option<f64> {
    let mut cosines: Vec<Vec<f64>> = vec![Vec::new(); sketches.len()];
    for_each_sketch_pair(sketches, |i, j, cosine| {
        if let Some(cos) = cosine {
            cosines[i].push(cos);
            cosines[j].push(cos);
        }
    });
    let upper_median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    upper_median(cosines.into_iter().filter_map(upper_median).collect())
}

/// The cosine distance of every sketch to the coordinate-wise median sketch.
pub fn sketch_cosine_distances(sketches: &[&[i32]]) -> Vec<f64> {
    let vectors: Vec<Vec<i64>> = sketches
        .iter()
        .map(|s| s.iter().map(|v| i64::from(*v)).collect())
        .collect();
    cosine_distances_to_median(&vectors)
}

/// For every member, `1 + (#above - #below) / K` of its values against the coordinate-wise
/// median of all members' `coordinates` (each a vector of the same `K` sampled coordinates,
/// shorter ones zero-padded), in [0, 2]; 1 for every member when `K` is 0. Exact integer
/// comparisons against the doubled median up to one division.
pub fn coordinate_sign_balances(coordinates: &[&[i64]]) -> Vec<f64> {
    let median = doubled_median(coordinates);
    if median.is_empty() {
        return vec![1.0; coordinates.len()];
    }
    coordinates
        .iter()
        .map(|v| {
            let balance: i64 = median
                .iter()
                .enumerate()
                .map(|(k, m)| {
                    let doubled = 2 * i128::from(v.get(k).copied().unwrap_or(0));
                    match doubled.cmp(m) {
                        std::cmp::Ordering::Greater => 1,
                        std::cmp::Ordering::Less => -1,
                        std::cmp::Ordering::Equal => 0,
                    }
                })
                .sum();
            1.0 + balance as f64 / median.len() as f64
        })
        .collect()
}

/// Each committer's sketch sum over earlier evaluated rounds (from `history`, none for a member
/// without an entry) plus its sketch of this round. `commitments` sorted by member.
pub fn cumulative_sketches(
    commitments: &[pb::Commitment],
    history: &pb::SketchHistory,
) -> Vec<Vec<i64>> {
    commitments
        .iter()
        .map(|c| {
            let earlier = entry_of(history, &c.member).map_or(&[][..], |e| &e.sum[..]);
            add_sketch(earlier, &c.sketch_values())
        })
        .collect()
}

/// `member`'s entry in `history` (entries sorted by member), if it has one.
fn entry_of<'a>(history: &'a pb::SketchHistory, member: &str) -> Option<&'a pb::SketchSum> {
    history
        .entries
        .binary_search_by(|e| e.member.as_str().cmp(member))
        .ok()
        .map(|i| &history.entries[i])
}

/// `sum + sketch` coordinate-wise (saturating; the shorter one zero-padded).
pub fn add_sketch(sum: &[i64], sketch: &[i32]) -> Vec<i64> {
    let sketch: Vec<i64> = sketch.iter().map(|v| i64::from(*v)).collect();
    add_sums(sum, &sketch)
}

/// `a + b` coordinate-wise (saturating; the shorter one zero-padded).
fn add_sums(a: &[i64], b: &[i64]) -> Vec<i64> {
    (0..a.len().max(b.len()))
        .map(|k| {
            let x = a.get(k).copied().unwrap_or(0);
            x.saturating_add(b.get(k).copied().unwrap_or(0))
        })
        .collect()
}

/// The centres the cumulative feature measures each committer against (`commitments` sorted by
/// member): twice the consensus of the earlier rounds the member committed to (its sum's
/// `consensus`, none without a sum) plus the doubled coordinate-wise median of this round's
/// sketches; so, up to the factor 2, what the accepted members' mean sketches add up to over the
/// member's own rounds, with this round's median standing for this round's mean.
///
/// Each member is measured over its own rounds, not over every round: a member that sat out
/// rounds (drawn by sampling, joined late) would otherwise be measured against directions it
/// never trained in, and the projection changes every round, so those rounds add only noise to
/// the cosine. With a quarter of 1,000 members drawn a round, the one consensus of all rounds
/// made the z-score flag 47 honest members in round 2 and the default
/// ensemble 13; measured over their own rounds, none.
pub fn cumulative_centres(
    commitments: &[pb::Commitment],
    history: &pb::SketchHistory,
) -> Vec<Vec<i128>> {
    let sketches: Vec<Vec<i64>> = commitments
        .iter()
        .map(|c| c.sketch_values().into_iter().map(i64::from).collect())
        .collect();
    let median = doubled_median(&sketches);
    commitments
        .iter()
        .map(|c| {
            let consensus = entry_of(history, &c.member).map_or(&[][..], |e| &e.consensus[..]);
            (0..median.len().max(consensus.len()))
                .map(|k| {
                    let earlier = i128::from(consensus.get(k).copied().unwrap_or(0));
                    median
                        .get(k)
                        .copied()
                        .unwrap_or(0)
                        .saturating_add(earlier.saturating_mul(2))
                })
                .collect()
        })
        .collect()
}

/// `a / b` rounded half away from zero (`b > 0`).
fn div_round(a: i128, b: i128) -> i128 {
    let half = b / 2;
    if a >= 0 {
        (a + half) / b
    } else {
        (a - half) / b
    }
}

/// The coordinate-wise weighted mean of `rows` (values, weight): `sum w_i v_i / sum w_i`, each
/// value rounded half away from zero, shorter rows zero-padded, saturating; `None` when the
/// weights sum to 0.
fn weighted_mean<T: Copy + Into<i128>>(rows: &[(&[T], i128)]) -> Option<Vec<i64>> {
    let weight = rows
        .iter()
        .fold(0i128, |acc, (_, w)| acc.saturating_add(*w));
    if weight == 0 {
        return None;
    }
    let len = rows.iter().map(|(v, _)| v.len()).max().unwrap_or(0);
    Some(
        (0..len)
            .map(|k| {
                let total = rows.iter().fold(0i128, |acc, (v, w)| {
                    let value: i128 = v.get(k).copied().map_or(0, Into::into);
                    acc.saturating_add(value.saturating_mul(*w))
                });
                saturate(div_round(total, weight))
            })
            .collect(),
    )
}

/// The coordinate-wise mean of the `accepted` commitments' sketches, each value rounded half
/// away from zero; `None` when nobody was accepted.
fn accepted_mean(accepted: &[&pb::Commitment]) -> Option<Vec<i64>> {
    let sketches: Vec<Vec<i32>> = accepted.iter().map(|c| c.sketch_values()).collect();
    let rows: Vec<(&[i32], i128)> = sketches.iter().map(|s| (&s[..], 1)).collect();
    weighted_mean(&rows)
}

/// The sample-weighted mean of `accepted`'s sampled coordinates (`sum n_i c_i / sum n_i`, each
/// value rounded half away from zero, shorter lists zero-padded, saturating): under FedAvg the
/// change the round made to the global model at those positions. `None` when nobody was
/// accepted, no one carries coordinates, or the weights sum to 0.
pub fn weighted_mean_coordinates(accepted: &[&pb::Commitment]) -> Option<Vec<i64>> {
    let values = nano_coordinates(accepted.iter().copied());
    let rows: Vec<(&[i64], i128)> = values
        .iter()
        .zip(accepted)
        .map(|(v, c)| (&v[..], i128::from(c.num_samples)))
        .collect();
    weighted_mean(&rows).filter(|mean| !mean.is_empty())
}

/// Every commitment's sampled coordinates in nano-units ([`Coordinates::nano`]).
fn nano_coordinates<'a>(commitments: impl Iterator<Item = &'a pb::Commitment>) -> Vec<Vec<i64>> {
    commitments
        .map(|c| Coordinates::of_commitment(c).nano())
        .collect()
}

/// The global model's previous change the consensus record keeps (nano-units, widened) and its
/// squared norm.
fn kept_change(consensus: &pb::ConsensusSketch) -> (Vec<i128>, i128) {
    let change: Vec<i128> = consensus
        .previous_change
        .iter()
        .map(|&m| i128::from(m))
        .collect();
    let squared = squared_norm(&change);
    (change, squared)
}

/// Every committer's `|c - m| / |m|` against the previous change `m` the consensus record
/// holds, when it was recorded for the round before the commitments' (see the module docs): 1
/// for everyone when there is no such record or `m` is zero. Integer sums (saturating) up to one
/// square root each and one division.
pub fn previous_change_distances(
    commitments: &[pb::Commitment],
    consensus: &pb::ConsensusSketch,
) -> Vec<f64> {
    let (previous, norm_sq) = kept_change(consensus);
    commitments
        .iter()
        .map(|c| {
            if norm_sq == 0 || consensus.previous_change_round.saturating_add(1) != c.round {
                return 1.0;
            }
            let coordinates = Coordinates::of_commitment(c).nano();
            let len = previous.len().max(coordinates.len());
            let difference: Vec<i128> = (0..len)
                .map(|k| {
                    let value = i128::from(coordinates.get(k).copied().unwrap_or(0));
                    value - previous.get(k).copied().unwrap_or(0)
                })
                .collect();
            (squared_norm(&difference) as f64).sqrt() / (norm_sq as f64).sqrt()
        })
        .collect()
}

/// Gives `history` what it takes from the consortium's anomaly configuration `config` and never
/// stores with the sums: the reference direction ([`pb::MislabelledConfig::reference_steps`],
/// what the margins compare with) and whether move responses leave the member out
/// ([`pb::AscentConfig::leave_one_out`]). `EvaluateRound` and every replay of it call this
/// before extending or scoring the history.
pub fn configure(history: &mut pb::SketchHistory, config: &pb::AnomalyConfig) {
    history.reference_steps = config.get_mislabelled().reference_steps.clone();
    history.leave_one_out = config.get_ascent().leave_one_out;
}

/// The `(round, member)` of the commitment each member of `history` last had evaluated (its
/// entry's `last_round`), in the entries' order: what [`pb::SketchHistory::previous`] holds
/// for [`own_change_cosines`]. `EvaluateRound` reads them from state, an auditor from its replay.
pub fn previous_rounds(history: &pb::SketchHistory) -> Vec<(u64, &str)> {
    history
        .entries
        .iter()
        .filter(|e| e.last_round > 0)
        .map(|e| (e.last_round, e.member.as_str()))
        .collect()
}

/// Every committer's `cos(c, p)` over the sampled coordinates: its change `c` against `p`, its
/// own change in the commitment of an earlier round that `previous` holds for it (see the
/// module docs); 1 when `previous` holds none, holds one of this round or later, or either
/// change is zero. Integer sums (saturating) up to the final division.
pub fn own_change_cosines(commitments: &[pb::Commitment], previous: &[pb::Commitment]) -> Vec<f64> {
    let earlier = by_member(previous);
    commitments
        .iter()
        .map(|c| {
            let Some(p) = own_previous(&earlier, c) else {
                return 1.0;
            };
            let now = Coordinates::of_commitment(c).nano();
            let before: Vec<i128> = Coordinates::of_commitment(p)
                .nano()
                .into_iter()
                .map(i128::from)
                .collect();
            let before_sq = squared_norm(&before);
            if before_sq == 0 || now.iter().all(|&v| v == 0) {
                return 1.0;
            }
            1.0 - cosine_distance(&now, &before, before_sq)
        })
        .collect()
}

/// `previous`'s commitment of `c`'s member, when it is of an earlier round than `c`.
fn own_previous<'a>(
    earlier: &std::collections::BTreeMap<&str, &'a pb::Commitment>,
    c: &pb::Commitment,
) -> Option<&'a pb::Commitment> {
    earlier
        .get(c.member.as_str())
        .copied()
        .filter(|p| p.round < c.round)
}

/// `previous` by member.
fn by_member(previous: &[pb::Commitment]) -> std::collections::BTreeMap<&str, &pb::Commitment> {
    previous.iter().map(|p| (p.member.as_str(), p)).collect()
}

/// A value of `i128` in `i64`, saturating.
fn saturate(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Nano-units squared (`10^-18`) to the response sums' `10^-9`, rounded half away from zero.
const RESPONSE_SCALE: i128 = 1_000_000_000;

/// Every committer's response term of this round (see the module docs), as
/// `(dot, weight)` in the units of [`pb::SketchSum::response_dot`]: the dot product of its change
/// minus its own previous change (its commitment in `history.previous`) with the global model's
/// change `m` in between (the consensus record's), and the product of their lengths. With
/// `history.leave_one_out` ([`pb::AscentConfig::leave_one_out`]), `m` is the others' move where
/// the member's previous change is part of it (its entry's `last_kept`): `(S m - n_i c_{r-1}) /
/// (S - n_i)`, `S` the consensus record's `previous_change_samples` and `n_i` the member's
/// samples then, one rounding per value ([`others_move`]). `None` where it has none: its
/// previous commitment is not of the round before, the consensus record's `previous_change` is
/// not of that round, either vector is zero, or the member was all of the move it would be
/// left out of. Integer sums (saturating), two square roots and one rounding for the weight.
pub fn response_terms(
    commitments: &[pb::Commitment],
    history: &pb::SketchHistory,
) -> Vec<Option<(i64, u64)>> {
    let consensus = history.get_consensus();
    let (kept, kept_sq) = kept_change(consensus);
    let earlier = by_member(&history.previous);
    commitments
        .iter()
        .map(|c| {
            let p = own_previous(&earlier, c)?;
            if p.round.saturating_add(1) != c.round || consensus.previous_change_round != p.round {
                return None;
            }
            let (now, before) = (
                Coordinates::of_commitment(c).nano(),
                Coordinates::of_commitment(p).nano(),
            );
            let left_out = history.leave_one_out
                && entry_of(history, &c.member)
                    .is_some_and(|e| e.last_kept && e.last_round == p.round);
            // The kept move's norm is the same for every member; only the others' move is
            // the member's own.
            let others;
            let (moved, moved_sq): (&[i128], i128) = if left_out {
                others = others_move(
                    &kept,
                    consensus.previous_change_samples,
                    p.num_samples,
                    &before,
                )?;
                (&others, squared_norm(&others))
            } else {
                (&kept, kept_sq)
            };
            if moved_sq == 0 {
                return None;
            }
            let response: Vec<i128> = (0..moved.len())
                .map(|k| {
                    let at = |v: &[i64]| i128::from(v.get(k).copied().unwrap_or(0));
                    at(&now) - at(&before)
                })
                .collect();
            let response_sq = squared_norm(&response);
            if response_sq == 0 {
                return None;
            }
            let dot = response.iter().zip(moved).fold(0i128, |acc, (r, m)| {
                acc.saturating_add(r.saturating_mul(*m))
            });
            let weight =
                (response_sq as f64).sqrt() * (moved_sq as f64).sqrt() / RESPONSE_SCALE as f64;
            Some((
                saturate(div_round(dot, RESPONSE_SCALE)),
                weight.round() as u64,
            ))
        })
        .collect()
}

/// The model's move `moved` (nano-units, over `total` accepted samples) without the share of
/// an accepted commitment to the same round of `own` samples and coordinates `coordinates`:
/// `(S m - n c) / (S - n)` coordinate-wise, rounded half away from zero (saturating). `None`
/// when it was all of the move (`n >= S`).
pub fn others_move(moved: &[i128], total: u64, own: u64, coordinates: &[i64]) -> Option<Vec<i128>> {
    let (total, own) = (i128::from(total), i128::from(own));
    if own >= total {
        return None;
    }
    Some(
        moved
            .iter()
            .enumerate()
            .map(|(k, &m)| {
                let c = i128::from(coordinates.get(k).copied().unwrap_or(0));
                div_round(
                    total
                        .saturating_mul(m)
                        .saturating_sub(own.saturating_mul(c)),
                    total - own,
                )
            })
            .collect(),
    )
}

/// Every committer's `MOVE_RESPONSE` (see the module docs): its entry's response sums in
/// `history` plus this round's term ([`response_terms`]), dot over weight; 0 when the weights
/// sum to 0.
pub fn move_responses(commitments: &[pb::Commitment], history: &pb::SketchHistory) -> Vec<f64> {
    let terms = response_terms(commitments, history);
    commitments
        .iter()
        .zip(terms)
        .map(|(c, term)| {
            let (mut dot, mut weight) = entry_of(history, &c.member)
                .map_or((0, 0), |e| (e.response_dot, e.response_weight));
            if let Some((d, w)) = term {
                dot = dot.saturating_add(d);
                weight = weight.saturating_add(w);
            }
            if weight == 0 {
                0.0
            } else {
                (dot as f64 / weight as f64).clamp(-1.0, 1.0)
            }
        })
        .collect()
}

/// The reference step that marks a sampled position outside the reference's tensors (a
/// LoRA adapter's, where the reference is a classification head's): `-128`, which no quantized
/// step takes. [`margin_terms`] leaves such positions out of both vectors.
pub const OUTSIDE_REFERENCE: u8 = 0x80;

/// How many of `reference_steps` lie inside the reference and are non-zero there: the
/// positions [`margin_terms`] compares changes at (none: the reference holds no direction).
pub fn covered_positions(reference_steps: &[u8]) -> usize {
    reference_steps
        .iter()
        .filter(|&&b| b != 0 && b != OUTSIDE_REFERENCE)
        .count()
}

/// Every committer's `cos(c, r)` over the sampled coordinates the reference covers (every one
/// but those marked [`OUTSIDE_REFERENCE`]), ppm rounded half away from zero: its change's
/// steps `c` against the reference's `reference_steps` (see the module docs; the steps share
/// one step size per vector, so their cosine is the values'). `None` where the reference is
/// empty, the lengths differ or either vector is zero where the reference covers. Integer sums
/// up to the final division (steps lie within 127, so they cannot overflow).
pub fn margin_terms(commitments: &[pb::Commitment], reference_steps: &[u8]) -> Vec<Option<i64>> {
    let outside = i32::from(OUTSIDE_REFERENCE as i8);
    let reference = signed_bytes::unpack(reference_steps);
    let reference_sq: i64 = reference
        .iter()
        .filter(|&&r| r != outside)
        .map(|&r| i64::from(r * r))
        .sum();
    commitments
        .iter()
        .map(|c| {
            let steps = signed_bytes::unpack(&c.coordinate_steps);
            if reference_sq == 0 || steps.len() != reference.len() {
                return None;
            }
            let (mut steps_sq, mut dot) = (0i64, 0i64);
            for (&s, &r) in steps.iter().zip(&reference) {
                if r != outside {
                    steps_sq += i64::from(s * s);
                    dot += i64::from(s * r);
                }
            }
            if steps_sq == 0 {
                return None;
            }
            let cosine = dot as f64 / ((steps_sq as f64).sqrt() * (reference_sq as f64).sqrt());
            Some(fixed::saturating_micro(cosine))
        })
        .collect()
}

/// Every committer's `REFERENCE_MARGIN` (see the module docs): its entry's margin sum and
/// rounds in `history` plus this round's term ([`margin_terms`] against the history's
/// reference), the sum over the rounds; 0 without any.
pub fn reference_margins(commitments: &[pb::Commitment], history: &pb::SketchHistory) -> Vec<f64> {
    let terms = margin_terms(commitments, &history.reference_steps);
    commitments
        .iter()
        .zip(terms)
        .map(|(c, term)| {
            let (mut sum, mut rounds) = entry_of(history, &c.member)
                .map_or((0, 0), |e| (e.margin_sum_ppm, e.margin_rounds));
            if let Some(t) = term {
                sum = sum.saturating_add(t);
                rounds = rounds.saturating_add(1);
            }
            if rounds == 0 {
                0.0
            } else {
                (fixed::micro_to_f64(sum) / f64::from(rounds)).clamp(-1.0, 1.0)
            }
        })
        .collect()
}

/// The consensus after round `round`: the coordinate-wise mean of the `accepted` commitments'
/// sketches (rounded half away from zero) added to it, unchanged when nobody was accepted; and
/// the previous change replaced by the accepted members' weighted mean coordinates
/// ([`weighted_mean_coordinates`]), their samples and `round`, or cleared (empty, round 0) when
/// there are none. `withdrawn` are the commitments to the round before that round `round`'s
/// verdict withdrew ([`super::withdraw`]): the kept change is then the model's move with them
/// taken back out ([`withdrawn_change`]).
pub fn extend_consensus(
    consensus: &pb::ConsensusSketch,
    round: u64,
    accepted: &[&pb::Commitment],
    withdrawn: &[&pb::Commitment],
) -> pb::ConsensusSketch {
    let mut previous_change = weighted_mean_coordinates(accepted).unwrap_or_default();
    if !previous_change.is_empty() && !withdrawn.is_empty() {
        previous_change = withdrawn_change(&previous_change, consensus, withdrawn);
    }
    // Without coordinates the record stays as it was before the field existed.
    let (previous_change_round, previous_change_samples) = if previous_change.is_empty() {
        (0, 0)
    } else {
        let samples = accepted
            .iter()
            .fold(0u64, |acc, c| acc.saturating_add(c.num_samples));
        (round, samples)
    };
    let Some(mean) = accepted_mean(accepted) else {
        return pb::ConsensusSketch {
            previous_change,
            previous_change_round,
            previous_change_samples,
            ..consensus.clone()
        };
    };
    pb::ConsensusSketch {
        sum: add_sums(&consensus.sum, &mean),
        rounds: consensus.rounds.saturating_add(1),
        last_round: round,
        previous_change,
        previous_change_round,
        previous_change_samples,
        ..Default::default()
    }
}

/// A round's mean change `mean` (nano-units) plus what withdrawing `withdrawn`, commitments to
/// the round before, adds to the model's move: FedAvg of the round before without them, minus
/// FedAvg with them. With `m` the kept change of the round before (`consensus`), `N` its
/// samples, `n_l` and `u_l` each withdrawn commitment's samples and coordinates and `L` their
/// sum, that is `sum n_l (m - u_l) / (N - L)`; when they were all of it (`L >= N`), the round
/// before is undone, `-m`. Exact integer sums, one rounding per value, saturating. `mean`
/// unchanged when the kept change is not of the round before (nothing is known to withdraw).
pub fn withdrawn_change(
    mean: &[i64],
    consensus: &pb::ConsensusSketch,
    withdrawn: &[&pb::Commitment],
) -> Vec<i64> {
    let (kept, _) = kept_change(consensus);
    let round = withdrawn.first().map_or(0, |c| c.round);
    if kept.is_empty() || consensus.previous_change_round != round {
        return mean.to_vec();
    }
    let total = i128::from(consensus.previous_change_samples);
    let taken = withdrawn.iter().fold(0i128, |acc, c| {
        acc.saturating_add(i128::from(c.num_samples))
    });
    let coordinates = nano_coordinates(withdrawn.iter().copied());
    let len = mean.len().max(kept.len());
    (0..len)
        .map(|k| {
            let m = kept.get(k).copied().unwrap_or(0);
            let delta = if taken >= total {
                -m
            } else {
                let numerator = coordinates
                    .iter()
                    .zip(withdrawn)
                    .fold(0i128, |acc, (u, c)| {
                        let u = i128::from(u.get(k).copied().unwrap_or(0));
                        acc.saturating_add(i128::from(c.num_samples).saturating_mul(m - u))
                    });
                div_round(numerator, total - taken)
            };
            saturate(i128::from(mean.get(k).copied().unwrap_or(0)).saturating_add(delta))
        })
        .collect()
}

/// The whole history after round `round`: the committers' sums ([`extend_history`]), each
/// committer's `consensus` and the consortium's consensus gaining the mean sketch of the members
/// the verdict `accepted` (sorted keys; nothing when it accepted nobody); the consensus record
/// names `round` its last evaluated one and the committers its followers ([`super::stored`]).
/// Where the history leaves members out of the move they respond to
/// ([`pb::SketchHistory::leave_one_out`]), every accepted committer's entry records it
/// (`last_kept`).
pub fn extend_after_verdict(
    history: &pb::SketchHistory,
    round: u64,
    commitments: &[pb::Commitment],
    accepted: &[String],
    withdrawn: &[String],
) -> pb::SketchHistory {
    let mut next = extend_history(history, round, commitments);
    let chosen: Vec<&pb::Commitment> = commitments
        .iter()
        .filter(|c| accepted.binary_search(&c.member).is_ok())
        .collect();
    if history.leave_one_out {
        for entry in next.entries.iter_mut().filter(|e| e.last_round == round) {
            entry.last_kept = accepted.binary_search(&entry.member).is_ok();
        }
    }
    if let Some(mean) = accepted_mean(&chosen) {
        let committers: std::collections::BTreeSet<&str> =
            commitments.iter().map(|c| c.member.as_str()).collect();
        for entry in next.entries.iter_mut() {
            if committers.contains(entry.member.as_str()) {
                // Without trailing zeros, as the ledger restores it (`stored`).
                entry.consensus = super::stored::trimmed(add_sums(&entry.consensus, &mean));
            }
        }
    }
    let withdrawn: Vec<&pb::Commitment> = history
        .previous
        .iter()
        .filter(|p| withdrawn.binary_search(&p.member).is_ok())
        .collect();
    next.set_consensus(pb::ConsensusSketch {
        evaluated_round: round,
        followers: u32::try_from(commitments.len()).unwrap_or(u32::MAX),
        ..extend_consensus(history.get_consensus(), round, &chosen, &withdrawn)
    });
    next
}

/// The history after round `round`'s commitments: every committer's entry gains its sketch and
/// one round and records `round` as its last (new entries are created), its response term
/// where it has one ([`response_terms`]: only when `history.previous` holds its commitment to
/// the round before, which `EvaluateRound` reads when a method compares with it) and its
/// margin term where it has one ([`margin_terms`]: only with a reference); entries stay
/// sorted by member. `EvaluateRound` stores the committers' new entries; an auditor replays the
/// whole history round by round, reading the same previous commitments.
pub fn extend_history(
    history: &pb::SketchHistory,
    round: u64,
    commitments: &[pb::Commitment],
) -> pb::SketchHistory {
    let mut entries: std::collections::BTreeMap<String, pb::SketchSum> = history
        .entries
        .iter()
        .map(|e| (e.member.clone(), e.clone()))
        .collect();
    let terms = response_terms(commitments, history);
    let margins = margin_terms(commitments, &history.reference_steps);
    for ((c, term), margin) in commitments.iter().zip(terms).zip(margins) {
        let entry = entries
            .entry(c.member.clone())
            .or_insert_with(|| pb::SketchSum {
                member: c.member.clone(),
                ..Default::default()
            });
        entry.sum = add_sketch(&entry.sum, &c.sketch_values());
        entry.rounds = entry.rounds.saturating_add(1);
        entry.last_round = round;
        // Its verdict sets it (`extend_after_verdict`).
        entry.last_kept = false;
        if let Some((dot, weight)) = term {
            entry.response_dot = entry.response_dot.saturating_add(dot);
            entry.response_weight = entry.response_weight.saturating_add(weight);
        }
        if let Some(m) = margin {
            entry.margin_sum_ppm = entry.margin_sum_ppm.saturating_add(m);
            entry.margin_rounds = entry.margin_rounds.saturating_add(1);
        }
    }
    pb::SketchHistory {
        entries: entries.into_values().collect(),
        consensus: history.consensus.clone(),
        reference_steps: history.reference_steps.clone(),
        leave_one_out: history.leave_one_out,
        ..Default::default()
    }
}

/// For every member, how far its update norm lies above (or below) what the round's norms
/// predict for its sample count, in natural-log units: `ln(norm) - a - b ln(samples)`, with `a`
/// and `b` the repeated median line ([`super::stats::repeated_median_line`]) through the points
/// `(ln samples, ln norm)` of the members whose norm is not zero, its slope `b` held within
/// `[0, 1]`; 0 for a zero norm, which has no logarithm (the unchanged-update method's case). A
/// sample count below 1 counts as 1. `norms` and `samples` are the `UPDATE_NORM` and
/// `SAMPLE_COUNT` columns, in member order.
///
/// Why: a member training on more data takes more steps, so honest norms grow with the sample
/// count, and on shards as skewed as Dirichlet 0.1 they spread over a factor of ten and more. A
/// scaling attacker's update whose own norm was short can then land among the honest norms,
/// where neither the norm's z-score nor DBSCAN sees it; against the line it is still ln(10) =
/// 2.3 above its own point. On the attack benchmark's Dirichlet 0.1 grids (10 members, the
/// classic attacks on seeds 0-2, 100-102 and 200-202 and the colluding ones on seeds 0-2,
/// `every-attack-convex` with `--skewed-shards`, six rounds) 9,504 honest member-rounds lay at
/// -1.71 to 1.20 and 310 of 324 scaler member-rounds at ln 4 and above (the lowest, 0.01, a
/// scaler whose own update was a tenth of the others'); members fine-tuning LoRA adapters
/// with AdamW at -0.27 to 0.88 (docs/anomaly-detection.md, "Norms against shard sizes"). The
/// repeated median keeps the line where the honest members put it with up to half of the
/// points off it, and points with the most samples (whose leverage carries a least-squares
/// line) pull it no more than any other. Three scalers of ten still tilted it below 0
/// on the benchmark (down to -1.4), where their residuals fell to 0.18; a member with more
/// data does not send a shorter update, nor one longer in proportion to more than its steps,
/// so the slope is held within `[0, 1]` (then 1.20 and up). Quadratic in the members.
pub fn sample_norm_residuals(norms: &[f64], samples: &[f64]) -> Vec<f64> {
    use super::stats::{ln, repeated_median_line};
    let points: Vec<Option<(f64, f64)>> = norms
        .iter()
        .zip(samples)
        .map(|(&norm, &n)| (norm > 0.0).then(|| (ln(n.max(1.0)), ln(norm))))
        .collect();
    let fitted: Vec<(f64, f64)> = points.iter().flatten().copied().collect();
    let (_, slope) = repeated_median_line(&fitted);
    let slope = slope.clamp(0.0, 1.0);
    let offsets: Vec<f64> = fitted.iter().map(|(x, y)| y - slope * x).collect();
    let intercept = super::stats::median(&offsets);
    points
        .iter()
        .map(|p| p.map_or(0.0, |(x, y)| y - intercept - slope * x))
        .collect()
}

/// For every member, the cosine of its sketch with the others' mean update as their sketches
/// tell it: `cos(s_i, T - w_i s_i)`, `T = sum_j w_j s_j`, where `w_j = norm_j / |s_j|` turns
/// each sketch back into its update's projection (a member scales its sketch to the byte range,
/// so the sketch alone has lost the update's length; the projection's length follows the
/// update's norm); 0 where the sketch or the rest is zero, and a zero norm or sketch weighs 0.
/// Shorter sketches count as zero-padded. `f64` sums in member order; linear in the members,
/// computed when a method asks ([`super::MemberData`] keeps the sketches).
///
/// Why: an attacker that sends the other members' mean (ALIE with one attacker, whose shift
/// `z` is 0, sends the honest mean itself) lies at 1, where a member training on data of its
/// own points partly its own way: on the attack benchmark's head (10 members, seeds 0-2, rounds
/// 1-6, in full dimension) honest members' cosines with the others' mean lay at -0.04 to 0.82
/// with IID shards and -0.80 to 0.84 with Dirichlet 0.1 shards
/// (`agreement_tests::leave_one_out_mean_cosines`). Such an update lies at the centre of every
/// statistic the voting methods read. Unweighted sums of the sketches put a lone ALIE attacker
/// at 0.91-0.99 only, honest members' at up to 0.87 (docs/anomaly-detection.md, "Copies of the
/// others' mean").
pub fn others_mean_cosines(sketches: &[&[i32]], norms: &[f64]) -> Vec<f64> {
    let length = sketches.iter().map(|s| s.len()).max().unwrap_or(0);
    let lengths: Vec<f64> = sketches
        .iter()
        .map(|s| {
            s.iter()
                .fold(0.0, |acc, v| acc + f64::from(*v) * f64::from(*v))
                .sqrt()
        })
        .collect();
    let weights: Vec<f64> = lengths
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let norm = norms.get(i).copied().unwrap_or(0.0);
            if l > 0.0 && norm > 0.0 && norm.is_finite() {
                norm / l
            } else {
                0.0
            }
        })
        .collect();
    let mut total = vec![0.0f64; length];
    for (sketch, w) in sketches.iter().zip(&weights) {
        for (t, v) in total.iter_mut().zip(sketch.iter()) {
            *t += w * f64::from(*v);
        }
    }
    sketches
        .iter()
        .zip(weights.iter().zip(&lengths))
        .map(|(sketch, (w, own))| {
            let (mut dot, mut rest) = (0.0f64, 0.0f64);
            for (k, t) in total.iter().enumerate() {
                let x = f64::from(sketch.get(k).copied().unwrap_or(0));
                let r = t - w * x;
                dot += x * r;
                rest += r * r;
            }
            if *own == 0.0 || rest <= 0.0 {
                0.0
            } else {
                (dot / (own * rest.sqrt())).clamp(-1.0, 1.0)
            }
        })
        .collect()
}

/// The factor of [`scale_floor`] for `COORDINATE_SIGN_BALANCE`: twice the binomial spread.
pub const SIGN_BALANCE_FLOOR_FACTOR: f64 = 2.0;

/// [`scale_floor`] for `PREVIOUS_CHANGE_DISTANCE`, as a fraction of the column's median: a
/// change resent unaltered (distance 0) scores `1 / PREVIOUS_CHANGE_FLOOR_FRACTION` = 5.
pub const PREVIOUS_CHANGE_FLOOR_FRACTION: f64 = 0.2;

/// The smallest scale `feature`'s column `values` over `commitments` may be standardized with
/// (see the module docs): `2 / sqrt(K)` for `COORDINATE_SIGN_BALANCE` with `K` the most
/// coordinates a committer carries (the length the balance compares over; 0 when none does),
/// [`PREVIOUS_CHANGE_FLOOR_FRACTION`] of the median of `values` for `PREVIOUS_CHANGE_DISTANCE`,
/// 0 for every other feature.
pub fn scale_floor(feature: pb::Feature, commitments: &[pb::Commitment], values: &[f64]) -> f64 {
    if feature == pb::Feature::PREVIOUS_CHANGE_DISTANCE {
        return PREVIOUS_CHANGE_FLOOR_FRACTION * super::stats::median(values).abs();
    }
    if feature != pb::Feature::COORDINATE_SIGN_BALANCE {
        return 0.0;
    }
    let k = commitments
        .iter()
        .map(|c| c.coordinate_steps.len())
        .max()
        .unwrap_or(0);
    if k == 0 {
        0.0
    } else {
        SIGN_BALANCE_FLOOR_FACTOR / (k as f64).sqrt()
    }
}

/// `f` of the commitments' decoded sketches, one per commitment in order.
fn with_sketches<T>(commitments: &[pb::Commitment], f: impl FnOnce(&[&[i32]]) -> T) -> T {
    let values: Vec<Vec<i32>> = commitments
        .iter()
        .map(pb::Commitment::sketch_values)
        .collect();
    let sketches: Vec<&[i32]> = values.iter().map(Vec::as_slice).collect();
    f(&sketches)
}

/// One feature column over `commitments` (sorted by member), given the sketch history of the
/// earlier evaluated rounds, the bandwidth edges among them and their PageRank scores.
pub fn commitment_feature(
    feature: pb::Feature,
    commitments: &[pb::Commitment],
    history: &pb::SketchHistory,
    edges: &[(usize, usize, f64)],
    pagerank: &[f64],
) -> Vec<f64> {
    use pb::Feature::*;
    let n = commitments.len();
    match feature {
        UPDATE_NORM => commitments
            .iter()
            .map(|c| fixed::micro_unsigned_to_f64(c.norm_micro))
            .collect(),
        SKETCH_COSINE_DISTANCE => with_sketches(commitments, sketch_cosine_distances),
        CUMULATIVE_SKETCH_COSINE_DISTANCE => cumulative_sketches(commitments, history)
            .iter()
            .zip(cumulative_centres(commitments, history))
            .map(|(sum, centre)| cosine_distance(sum, &centre, squared_norm(&centre)))
            .collect(),
        NEAREST_SKETCH_COSINE_DISTANCE => {
            with_sketches(commitments, nearest_sketch_cosine_distances)
        }
        COORDINATE_SIGN_BALANCE => {
            let values = nano_coordinates(commitments.iter());
            let coordinates: Vec<&[i64]> = values.iter().map(|v| &v[..]).collect();
            coordinate_sign_balances(&coordinates)
        }
        PREVIOUS_CHANGE_DISTANCE => previous_change_distances(commitments, history.get_consensus()),
        OWN_CHANGE_COSINE => own_change_cosines(commitments, &history.previous),
        MOVE_RESPONSE => move_responses(commitments, history),
        REFERENCE_MARGIN => reference_margins(commitments, history),
        TRAINING_LOSS => commitments
            .iter()
            .map(|c| fixed::micro_to_f64(c.loss_micro))
            .collect(),
        SAMPLE_COUNT => commitments.iter().map(|c| c.num_samples as f64).collect(),
        OTHERS_MEAN_COSINE => {
            let norms = commitment_feature(UPDATE_NORM, commitments, history, edges, pagerank);
            with_sketches(commitments, |sketches| {
                others_mean_cosines(sketches, &norms)
            })
        }
        SAMPLE_NORM_RESIDUAL => sample_norm_residuals(
            &commitment_feature(UPDATE_NORM, commitments, history, edges, pagerank),
            &commitment_feature(SAMPLE_COUNT, commitments, history, edges, pagerank),
        ),
        BANDWIDTH_IN => bandwidth_feature(n, edges, true),
        BANDWIDTH_OUT => bandwidth_feature(n, edges, false),
        PAGERANK_SCORE => pagerank.to_vec(),
        FEATURE_UNSET => vec![0.0; n],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(from: &str, to: &str, bandwidths: &[u64]) -> pb::Link {
        pb::Link {
            from: from.into(),
            to: to.into(),
            samples: bandwidths
                .iter()
                .map(|b| pb::LinkSample {
                    bytes_per_sec: *b,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn with_steps(member: &str, steps: &[i32]) -> pb::Commitment {
        pb::Commitment {
            member: member.into(),
            coordinate_step_nano: 1,
            coordinate_steps: signed_bytes::pack(steps).unwrap(),
            ..Default::default()
        }
    }

    /// Known answers: a member sending the others' mean lies at 1, one opposite to it at -1,
    /// one orthogonal at 0; a zero sketch, or a lone one, at 0; each sketch counts at its
    /// member's norm, not its own length (a member scales its sketch to the byte range).
    #[test]
    fn others_mean_cosines_known_answers() {
        let a = [2, 0, 0];
        let b = [0, 2, 0];
        let mean = [1, 1, 0];
        let against = [-1, -1, 0];
        let close = |x: f64, y: f64| assert!((x - y).abs() < 1e-12, "{x} != {y}");
        // Norms 1, 1, sqrt 2 / 2: the updates (1, 0, 0), (0, 1, 0), (0.5, 0.5, 0).
        let norms = [1.0, 1.0, 0.5f64.sqrt()];
        let cosines = others_mean_cosines(&[&a, &b, &mean], &norms);
        // a against (0.5, 1.5, 0): 0.5 / sqrt 2.5; the mean against (1, 1, 0): 1.
        close(cosines[0], 0.5 / 2.5f64.sqrt());
        close(cosines[2], 1.0);
        close(others_mean_cosines(&[&a, &b, &against], &norms)[2], -1.0);
        // b's update ten times longer: the others' mean leans to b; its sketch is the same.
        let leaning = others_mean_cosines(&[&a, &b, &mean], &[1.0, 10.0, 1.0]);
        close(leaning[2], 11.0 / (2f64.sqrt() * 101f64.sqrt()));
        assert_eq!(
            others_mean_cosines(&[&a, &[0, 0, 5]], &[1.0, 1.0]),
            [0.0, 0.0]
        );
        assert_eq!(
            others_mean_cosines(&[&a, &[0, 0, 0]], &[1.0, 1.0]),
            [0.0, 0.0]
        );
        assert_eq!(others_mean_cosines(&[&a, &b], &[1.0, 0.0]), [0.0, 0.0]);
        assert_eq!(others_mean_cosines(&[&a], &[1.0]), [0.0]);
        // Shorter sketches count as zero-padded.
        close(
            others_mean_cosines(&[&[1, 1], &[1, 1, 0]], &[1.0, 1.0])[0],
            1.0,
        );
    }

    /// Known answers: norms growing as the square root of the samples lie on the line
    /// (residual 0) and one eight times longer lies ln 8 above it; norms shrinking with the
    /// samples (a slope of -1, which honest members do not make) are read against a slope of
    /// 0, the median norm; a zero norm has residual 0 and is not fitted; the slope stays at 1
    /// at most.
    #[test]
    fn sample_norm_residuals_known_answers() {
        let close = |a: &[f64], b: &[f64]| {
            assert!(
                a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12),
                "{a:?} != {b:?}"
            );
        };
        let samples = [1.0, 4.0, 16.0, 64.0, 256.0];
        let on_line = [1.0, 2.0, 4.0, 8.0, 16.0];
        close(&sample_norm_residuals(&on_line, &samples), &[0.0; 5]);
        let mut scaled = on_line;
        scaled[2] *= 8.0;
        close(
            &sample_norm_residuals(&scaled, &samples),
            &[0.0, 0.0, 8f64.ln(), 0.0, 0.0],
        );
        let shrinking = [100.0, 10.0, 1.0];
        let ln10 = 10f64.ln();
        close(
            &sample_norm_residuals(&shrinking, &[1.0, 10.0, 100.0]),
            &[ln10, 0.0, -ln10],
        );
        let with_zero = [1.0, 2.0, 0.0, 8.0, 16.0];
        close(&sample_norm_residuals(&with_zero, &samples), &[0.0; 5]);
        // Norms growing as the square of the samples: read against slope 1.
        let steep = [1.0, 16.0, 256.0];
        close(
            &sample_norm_residuals(&steep, &[1.0, 4.0, 16.0]),
            &[-(4f64.ln()), 0.0, 4f64.ln()],
        );
        assert!(sample_norm_residuals(&[], &[]).is_empty());
    }

    /// Known answers: the round's cosine with the reference in ppm, none for a zero change, a
    /// length other than the reference's or no reference; the feature averages it with the
    /// member's earlier rounds, and the history's sums gain it.
    #[test]
    fn reference_margins_average_the_rounds_cosines() {
        let reference = signed_bytes::pack(&[3, -4, 0]).unwrap();
        let now = [
            with_steps("a", &[3, -4, 0]),
            with_steps("b", &[-6, 8, 0]),
            with_steps("c", &[4, 3, 5]),
            with_steps("d", &[0, 0, 0]),
            with_steps("e", &[1, 1]),
            with_steps("f", &[1, 0, 0]),
        ];
        let expected = [
            Some(1_000_000),
            Some(-1_000_000),
            Some(0),
            None,
            None,
            Some(600_000),
        ];
        assert_eq!(margin_terms(&now, &reference), expected);
        assert_eq!(margin_terms(&now, &[]), vec![None; 6]);
        // Positions outside the reference count in neither vector: c's 5 at the third is left
        // out (4 * 3 - 3 * 4 = 0 over the other two), f's change alone is compared there.
        let covering_two = [3, -4, 0x80u8 as i8 as i32];
        let covering_two = signed_bytes::pack(&covering_two).unwrap();
        assert_eq!(covering_two[2], OUTSIDE_REFERENCE);
        assert_eq!(margin_terms(&now, &covering_two), expected);
        let outside_only = [with_steps("g", &[0, 0, 9]), with_steps("h", &[6, 8, 100])];
        assert_eq!(
            margin_terms(&outside_only, &covering_two),
            [None, Some(-280_000)]
        );
        assert_eq!(
            margin_terms(&now, &signed_bytes::pack(&[-128, -128, -128]).unwrap()),
            vec![None; 6]
        );
        let history = pb::SketchHistory {
            entries: vec![pb::SketchSum {
                member: "f".into(),
                margin_sum_ppm: -1_500_000,
                margin_rounds: 3,
                ..Default::default()
            }]
            .into(),
            reference_steps: reference.clone(),
            ..Default::default()
        };
        // f: (-1.5 + 0.6) / 4.
        assert_eq!(
            reference_margins(&now, &history),
            [1.0, -1.0, 0.0, 0.0, 0.0, -0.225]
        );
        let after = extend_history(&history, 4, &now);
        let sums: Vec<(&str, i64, u32)> = after
            .entries
            .iter()
            .map(|e| (e.member.as_str(), e.margin_sum_ppm, e.margin_rounds))
            .collect();
        assert_eq!(
            sums,
            [
                ("a", 1_000_000, 1),
                ("b", -1_000_000, 1),
                ("c", 0, 1),
                ("d", 0, 0),
                ("e", 0, 0),
                ("f", -900_000, 4)
            ]
        );
        assert_eq!(after.reference_steps, reference);
        // Without a reference the sums stay as they were and the feature is 0.
        let plain = pb::SketchHistory {
            reference_steps: Vec::new(),
            ..history
        };
        assert_eq!(reference_margins(&now, &plain)[5], -0.5);
        assert_eq!(reference_margins(&now, &plain)[0], 0.0);
        let unchanged = extend_history(&plain, 4, &now);
        assert!(unchanged
            .entries
            .iter()
            .all(|e| e.member != "f" || e.margin_rounds == 3));
    }

    #[test]
    fn link_medians_and_bandwidth_features() {
        assert_eq!(link_bandwidth(&link("a", "b", &[5, 1, 3, 100])), Some(4.0));
        assert_eq!(link_bandwidth(&link("a", "b", &[])), None);
        let members: Vec<String> = ["a", "b", "c"].iter().map(|s| (*s).into()).collect();
        let links = [
            link("c", "a", &[30]),
            link("a", "b", &[10, 12, 14]),
            link("a", "c", &[20]),
            link("a", "zz", &[99]),
        ];
        let edges = reported_edges(&members, &links);
        assert_eq!(edges, vec![(0, 1, 12.0), (0, 2, 20.0), (2, 0, 30.0)]);
        assert_eq!(bandwidth_feature(3, &edges, false), vec![16.0, 0.0, 30.0]);
        assert_eq!(bandwidth_feature(3, &edges, true), vec![30.0, 12.0, 20.0]);
        // Only a-c is reported by both ends; the smaller median counts, both ways.
        let confirmed = bandwidth_edges(&members, &links, 0);
        assert_eq!(confirmed, vec![(0, 2, 20.0), (2, 0, 20.0)]);
        assert_eq!(
            bandwidth_feature(3, &confirmed, true),
            vec![20.0, 0.0, 20.0]
        );
        // 30 against 20 is a factor 1.5: refused when the agreement is 1.4.
        assert!(bandwidth_edges(&members, &links, 1_400_000).is_empty());
        assert_eq!(bandwidth_edges(&members, &links, 1_500_000).len(), 2);
    }

    #[test]
    fn cosine_distance_known_answers() {
        let a: &[i32] = &[1, 0];
        let b: &[i32] = &[1, 0];
        let flipped: &[i32] = &[-1, 0];
        // Median of (1,1,-1) = 1, (0,0,0) = 0: the centre is (1, 0).
        assert_eq!(
            sketch_cosine_distances(&[a, b, flipped]),
            vec![0.0, 0.0, 2.0]
        );
        let orthogonal: &[i32] = &[0, 5];
        let zero: &[i32] = &[0, 0];
        // Even count: the doubled centre is (1+1, 0+0) = (2, 0).
        assert_eq!(
            sketch_cosine_distances(&[a, b, orthogonal, b]),
            vec![0.0, 0.0, 1.0, 0.0]
        );
        assert_eq!(sketch_cosine_distances(&[zero, a, b]), vec![1.0, 0.0, 0.0]);
    }

    /// `member`'s commitment to `round` of `samples` with sampled coordinates `steps`, in steps
    /// of one nano-unit: the values as written.
    fn commit(member: &str, round: u64, samples: u64, steps: Vec<i32>) -> pb::Commitment {
        pb::Commitment {
            member: member.into(),
            round,
            num_samples: samples,
            coordinate_step_nano: 1,
            coordinate_steps: crate::testing::packed(&steps),
            ..Default::default()
        }
    }

    #[test]
    fn the_previous_change_is_the_weighted_mean_and_a_resent_one_lands_on_it() {
        // Round 1: a (3 samples) and b (1 sample) accepted, c excluded.
        let a = commit("a", 1, 3, vec![4, -8, 1]);
        let b = commit("b", 1, 1, vec![0, 8, 2]);
        let c = commit("c", 1, 5, vec![100, 100, 100]);
        // (3*4 + 0) / 4 = 3, (-24 + 8) / 4 = -4, (3 + 2) / 4 = 1.25 -> 1.
        assert_eq!(weighted_mean_coordinates(&[&a, &b]), Some(vec![3, -4, 1]));
        assert_eq!(weighted_mean_coordinates(&[]), None);
        assert_eq!(
            weighted_mean_coordinates(&[&commit("z", 1, 0, vec![1])]),
            None
        );
        let history = extend_after_verdict(
            &pb::SketchHistory::default(),
            1,
            &[a, b, c],
            &["a".into(), "b".into()],
            &[],
        );
        let consensus = history.get_consensus();
        assert_eq!(consensus.previous_change, vec![3, -4, 1]);
        assert_eq!(consensus.previous_change_round, 1);
        // Round 2: s resends the change; h trains (|h - m| = |(0, 4, 0)| = 4, |m| = sqrt(26)).
        let round2 = [
            commit("h", 2, 3, vec![3, 0, 1]),
            commit("s", 2, 3, vec![3, -4, 1]),
        ];
        let column = commitment_feature(
            pb::Feature::PREVIOUS_CHANGE_DISTANCE,
            &round2,
            &history,
            &[],
            &[],
        );
        assert_eq!(column, vec![4.0 / 26f64.sqrt(), 0.0]);
        // A record of another round than the one before, or none: 1 for everyone.
        let later: Vec<pb::Commitment> = round2
            .iter()
            .map(|c| pb::Commitment {
                round: 3,
                ..c.clone()
            })
            .collect();
        assert_eq!(previous_change_distances(&later, consensus), vec![1.0, 1.0]);
        assert_eq!(
            previous_change_distances(&round2, &pb::ConsensusSketch::default()),
            vec![1.0, 1.0]
        );
        // A round that accepted nobody leaves no previous change.
        let empty = extend_after_verdict(&history, 2, &round2, &[], &[]);
        assert!(empty.get_consensus().previous_change.is_empty());
        assert_eq!(empty.get_consensus().previous_change_round, 0);
        assert_eq!(empty.get_consensus().sum, consensus.sum);
    }

    /// Round 1 accepted a (3 samples, [4, -8, 1]) and b (1 sample, [0, 8, 2]): the kept change
    /// is [3, -4, 1] (3.25 rounded) over 4 samples. Round 2 accepts h ([1, 1, 1]) and withdraws
    /// a: FedAvg of round 1 without a is b's [0, 8, 2], a move of [-3, 12, 0] from the kept
    /// change (up to its rounding), which the kept change of round 2 gains:
    /// 3 * ([3, -4, 1] - [4, -8, 1]) / (4 - 3). Withdrawing both undoes round 1's change.
    #[test]
    fn a_withdrawal_moves_the_kept_change_as_it_moves_the_model() {
        let (a, b) = (
            commit("a", 1, 3, vec![4, -8, 1]),
            commit("b", 1, 1, vec![0, 8, 2]),
        );
        let h = commit("h", 2, 2, vec![1, 1, 1]);
        let mut history = extend_after_verdict(
            &pb::SketchHistory::default(),
            1,
            &[a.clone(), b.clone()],
            &["a".into(), "b".into()],
            &[],
        );
        let kept = history.get_consensus().clone();
        assert_eq!(
            (kept.previous_change.to_vec(), kept.previous_change_samples),
            (vec![3, -4, 1], 4)
        );
        assert_eq!(withdrawn_change(&[1, 1, 1], &kept, &[&a]), vec![-2, 13, 1]);
        assert_eq!(
            withdrawn_change(&[1, 1, 1], &kept, &[&a, &b]),
            vec![-2, 5, 0]
        );
        // Through the history: the withdrawn commitment is the member's previous one.
        history.previous = vec![a.clone(), b.clone()].into();
        let after = extend_after_verdict(
            &history,
            2,
            std::slice::from_ref(&h),
            &["h".into()],
            &["a".into()],
        );
        let consensus = after.get_consensus();
        assert_eq!(
            (
                consensus.previous_change.to_vec(),
                consensus.previous_change_round,
                consensus.previous_change_samples
            ),
            (vec![-2, 13, 1], 2, 2)
        );
        // A kept change of another round than the withdrawn commitments': nothing to take out.
        let stale = pb::ConsensusSketch {
            previous_change_round: 5,
            ..kept
        };
        assert_eq!(withdrawn_change(&[1, 1, 1], &stale, &[&a]), vec![1, 1, 1]);
    }

    #[test]
    fn own_change_cosines_known_answers() {
        let commit = |member: &str, round: u64, step_nano: u64, steps: Vec<i32>| pb::Commitment {
            member: member.into(),
            round,
            coordinate_step_nano: step_nano,
            coordinate_steps: crate::testing::packed(&steps),
            ..Default::default()
        };
        let previous = [
            commit("a", 1, 1, vec![3, 4, 0]),
            commit("b", 1, 1, vec![1, 0, 0]),
            commit("c", 1, 1, vec![0, 0, 0]),
            commit("e", 2, 1, vec![1, 1, 1]),
        ];
        let now = [
            // The same direction at another step size: cosine 1.
            commit("a", 2, 10, vec![6, 8, 0]),
            // Orthogonal, then reversed.
            commit("b", 2, 1, vec![0, 5, 0]),
            // The previous change was zero: nothing to compare with.
            commit("c", 2, 1, vec![1, 2, 3]),
            // No previous commitment.
            commit("d", 2, 1, vec![1, 2, 3]),
            // A "previous" commitment of this very round is not an earlier one.
            commit("e", 2, 1, vec![-1, -1, -1]),
        ];
        assert_eq!(
            own_change_cosines(&now, &previous),
            vec![1.0, 0.0, 1.0, 1.0, 1.0]
        );
        let reversed = [commit("b", 2, 1, vec![-2, 0, 0])];
        assert_eq!(own_change_cosines(&reversed, &previous), vec![-1.0]);
        // A zero change now: nothing to compare.
        let zero = [commit("a", 2, 1, vec![0, 0, 0])];
        assert_eq!(own_change_cosines(&zero, &previous), vec![1.0]);
        // Through the history, as EvaluateRound passes it.
        let history = pb::SketchHistory {
            previous: previous.to_vec().into(),
            ..Default::default()
        };
        assert_eq!(
            commitment_feature(
                pb::Feature::OWN_CHANGE_COSINE,
                &now[..2],
                &history,
                &[],
                &[]
            ),
            vec![1.0, 0.0]
        );
        // The rounds to read: each entry's last round.
        let entries = extend_history(&Default::default(), 1, &previous[..2]);
        assert_eq!(previous_rounds(&entries), vec![(1, "a"), (1, "b")]);
        assert!(previous_rounds(&Default::default()).is_empty());
    }

    #[test]
    fn leave_one_out_responses_compare_with_the_others_move() {
        let commit = |member: &str, round: u64, samples: u64, steps: Vec<i32>| pb::Commitment {
            member: member.into(),
            round,
            num_samples: samples,
            coordinate_step_nano: 1_000_000,
            coordinate_steps: crate::testing::packed(&steps),
            ..Default::default()
        };
        // Round 1 accepted a (1 sample) and b (3): the move is their weighted mean,
        // (1.5, 1, 0) thousandths, over 4 samples. c was excluded.
        let round_one = [
            commit("a", 1, 1, vec![3, 4, 0]),
            commit("b", 1, 3, vec![1, 0, 0]),
            commit("c", 1, 2, vec![0, 0, 5]),
        ];
        let accepted = ["a".to_owned(), "b".to_owned()];
        let now = [
            commit("a", 2, 1, vec![1, 4, 1]),
            commit("b", 2, 3, vec![0, 0, 0]),
            commit("c", 2, 2, vec![1, 0, 5]),
        ];
        let history_after = |leave_one_out: bool| {
            let start = pb::SketchHistory {
                leave_one_out,
                ..Default::default()
            };
            let mut history = extend_after_verdict(&start, 1, &round_one, &accepted, &[]);
            history.previous = round_one.to_vec().into();
            history
        };
        let full = history_after(false);
        assert_eq!(
            full.get_consensus().previous_change,
            vec![1_500_000, 1_000_000, 0]
        );
        assert_eq!(full.get_consensus().previous_change_samples, 4);
        // Nothing is recorded without leave-one-out, and the terms compare with the full move:
        // a's change moved by (-2, 0, 1), dot -3, lengths √5 and √3.25.
        assert!(full.entries.iter().all(|e| !e.last_kept));
        assert_eq!(
            response_terms(&now, &full),
            vec![Some((-3000, 4031)), Some((-1500, 1803)), Some((1500, 1803))]
        );
        let left_out = history_after(true);
        let kept: Vec<bool> = left_out.entries.iter().map(|e| e.last_kept).collect();
        assert_eq!(kept, [true, true, false]);
        // a against the others' move, b's (1, 0, 0): dot -2, lengths √5 and 1. b against a's
        // (3, 4, 0): dot -3, lengths 1 and 5. c was not in the move: the full one.
        assert_eq!(
            response_terms(&now, &left_out),
            vec![Some((-2000, 2236)), Some((-3000, 5000)), Some((1500, 1803))]
        );
        // The next verdict records who it accepted among the committers only.
        let after = extend_after_verdict(&left_out, 2, &now[1..], &["c".to_owned()], &[]);
        let kept: Vec<bool> = after.entries.iter().map(|e| e.last_kept).collect();
        assert_eq!(kept, [true, false, true]);
        // A member that was the whole move has no others' move to respond to.
        assert_eq!(others_move(&[5, 6], 3, 3, &[1, 1]), None);
        assert_eq!(others_move(&[5, -6], 4, 1, &[2, -3]), Some(vec![6, -7]));
    }

    #[test]
    fn move_response_known_answers() {
        // Steps of a thousandth, so that the dot products (nano-units squared) keep their digits
        // in the sums' units of 10^-9.
        let commit = |member: &str, round: u64, steps: Vec<i32>| pb::Commitment {
            member: member.into(),
            round,
            coordinate_step_nano: 1_000_000,
            coordinate_steps: crate::testing::packed(&steps),
            ..Default::default()
        };
        let previous = [
            commit("a", 1, vec![3, 4, 0]),
            commit("b", 1, vec![-3, -4, 0]),
            commit("c", 1, vec![1, 1, 1]),
            commit("e", 1, vec![2, 2, 2]),
        ];
        let consensus = pb::ConsensusSketch {
            previous_change: vec![2_000_000, 0, 0],
            previous_change_round: 1,
            ..Default::default()
        };
        let now = [
            // Its change moves by (-2, 0, 1) when the model moved by (2, 0, 0): against the
            // move, as a descent step's does. Dot -4 (10^-6), lengths √5 and 2.
            commit("a", 2, vec![1, 4, 1]),
            // The same negated: with the move.
            commit("b", 2, vec![-1, -4, -1]),
            // Its previous commitment is not of the round before.
            commit("c", 3, vec![0, 1, 1]),
            // No previous commitment.
            commit("d", 2, vec![1, 2, 3]),
            // No change of its change.
            commit("e", 2, vec![2, 2, 2]),
        ];
        let terms = |consensus: &pb::ConsensusSketch| {
            let history = pb::SketchHistory {
                consensus: Some(consensus.clone()).into(),
                previous: previous.to_vec().into(),
                ..Default::default()
            };
            response_terms(&now, &history)
        };
        assert_eq!(
            terms(&consensus),
            vec![Some((-4000, 4472)), Some((4000, 4472)), None, None, None]
        );
        // The consensus record must be of the round before.
        let stale = pb::ConsensusSketch {
            previous_change_round: 2,
            ..consensus.clone()
        };
        assert!(terms(&stale).iter().all(Option::is_none));
        // Without a recorded move: nothing.
        let unmoved = pb::ConsensusSketch::default();
        assert!(terms(&unmoved).iter().all(Option::is_none));
        // The feature adds the entry's earlier sums: (1000 - 4000) / (1000 + 4472) for a.
        let history = pb::SketchHistory {
            entries: vec![pb::SketchSum {
                member: "a".into(),
                response_dot: 1000,
                response_weight: 1000,
                ..Default::default()
            }]
            .into(),
            consensus: Some(consensus.clone()).into(),
            previous: previous.to_vec().into(),
            ..Default::default()
        };
        let responses = move_responses(&now, &history);
        assert!((responses[0] - (-3000.0 / 5472.0)).abs() < 1e-12);
        assert!((responses[1] - 4000.0 / 4472.0).abs() < 1e-12);
        assert_eq!(responses[2..], [0.0, 0.0, 0.0]);
        // The history keeps the sums, only where it holds the previous commitments.
        let after = extend_history(&history, 2, &now[..2]);
        let sums: Vec<(i64, u64)> = after
            .entries
            .iter()
            .map(|e| (e.response_dot, e.response_weight))
            .collect();
        assert_eq!(sums, vec![(-3000, 5472), (4000, 4472)]);
        let unread = pb::SketchHistory {
            previous: Default::default(),
            ..history
        };
        let after = extend_history(&unread, 2, &now[..2]);
        assert_eq!(after.entries[1].response_dot, 0);
        assert_eq!(after.entries[0].response_dot, 1000);
    }

    #[test]
    fn scale_floor_known_answers() {
        let with = |k: usize| pb::Commitment {
            coordinate_step_nano: 1,
            coordinate_steps: vec![1; k],
            ..Default::default()
        };
        let balance = pb::Feature::COORDINATE_SIGN_BALANCE;
        assert_eq!(
            scale_floor(balance, &[with(256), with(256)], &[1.0, 1.0]),
            0.125
        );
        // The longest list counts (shorter ones are zero-padded by the balance).
        assert_eq!(
            scale_floor(balance, &[with(16), with(64)], &[1.0, 1.0]),
            0.25
        );
        assert_eq!(scale_floor(balance, &[with(0), with(0)], &[1.0, 1.0]), 0.0);
        assert_eq!(scale_floor(balance, &[], &[]), 0.0);
        assert_eq!(
            scale_floor(pb::Feature::UPDATE_NORM, &[with(256)], &[2.0]),
            0.0
        );
        // A fifth of the median distance: 0.86 gives 0.172, so a resent change scores 5.
        let previous = pb::Feature::PREVIOUS_CHANGE_DISTANCE;
        let three = [with(256), with(256), with(256)];
        let floor = scale_floor(previous, &three, &[0.0, 0.86, 0.9]);
        assert!((floor - 0.172).abs() < 1e-12, "{floor}");
        assert_eq!(scale_floor(previous, &[], &[]), 0.0);
    }

    #[test]
    fn coordinate_sign_balance_known_answers() {
        // 1 + (#above - #below) / 3, as the feature computes it.
        let balance = |above_less_below: f64| 1.0 + above_less_below / 3.0;
        // Coordinate-wise medians: 2, 0, 5 (doubled: 4, 0, 10).
        let a: &[i64] = &[1, 0, 5];
        let b: &[i64] = &[2, 7, 9];
        let c: &[i64] = &[3, -1, 4];
        assert_eq!(
            coordinate_sign_balances(&[a, b, c]),
            vec![balance(-1.0), balance(2.0), balance(-1.0)]
        );
        assert_eq!(balance(3.0), 2.0);
        // An even count compares against the mean of the two middle values.
        let d: &[i64] = &[4, -2, 0];
        // Doubled medians: 5, -1, 9.
        assert_eq!(
            coordinate_sign_balances(&[a, b, c, d]),
            vec![balance(1.0), balance(1.0), balance(-1.0), balance(-1.0)]
        );
        // A member below the centre everywhere scores 0; no coordinates score 1.
        let low: &[i64] = &[-9, -9, -9];
        assert_eq!(coordinate_sign_balances(&[a, b, c, low])[3], 0.0);
        assert_eq!(coordinate_sign_balances(&[&[], &[]]), vec![1.0, 1.0]);
        assert!(coordinate_sign_balances(&[]).is_empty());
        // Extremes compare exactly, without overflow.
        let max: &[i64] = &[i64::MAX];
        let min: &[i64] = &[i64::MIN];
        assert_eq!(
            coordinate_sign_balances(&[max, min, max]),
            vec![1.0, 0.0, 1.0]
        );
    }

    #[test]
    fn nearest_sketch_distance_known_answers() {
        let x: &[i32] = &[3, 4];
        let y: &[i32] = &[4, 3];
        let same: &[i32] = &[3, 4];
        let opposite: &[i32] = &[-4, -3];
        let zero: &[i32] = &[0, 0];
        // cos(x, y) = 24 / 25; x and `same` coincide; `opposite` is nearest to x at
        // 1 - (-24 / 25).
        let d = nearest_sketch_cosine_distances(&[x, y, same, opposite]);
        assert_eq!(d[0], 0.0);
        assert!((d[1] - 1.0 / 25.0).abs() < 1e-15);
        assert_eq!(d[2], 0.0);
        assert!((d[3] - 49.0 / 25.0).abs() < 1e-15, "{d:?}");
        // A zero sketch is 1 from everyone; a lone sketch has no neighbour.
        assert_eq!(nearest_sketch_cosine_distances(&[zero, x]), vec![1.0, 1.0]);
        assert_eq!(nearest_sketch_cosine_distances(&[x]), vec![1.0]);
        assert!(nearest_sketch_cosine_distances(&[]).is_empty());
        // A shorter sketch counts as zero-padded.
        let short: &[i32] = &[3];
        let d = nearest_sketch_cosine_distances(&[short, x]);
        assert!((d[0] - 0.4).abs() < 1e-15 && (d[1] - 0.4).abs() < 1e-15);
        // Values too large for the 16-bit path take the exact one and still compare.
        let big: &[i32] = &[i32::MAX, i32::MIN];
        assert!(small_sketches(&[big, x]).is_none());
        assert_eq!(nearest_sketch_cosine_distances(&[big, big]), vec![0.0, 0.0]);
        // The fast path's bound: 127 fits at 4096 values, 32767 at two but not at three.
        assert!(small_sketches(&[&[127; 4096][..]]).is_some());
        assert!(small_sketches(&[&[32767, 32767][..]]).is_some());
        assert!(small_sketches(&[&[32767, 0, 0][..]]).is_none());
        assert!(small_sketches(&[&[32768][..]]).is_none());
    }

    #[test]
    fn sketch_agreement_is_the_median_of_each_sketchs_median_cosine() {
        let (x, y): (&[i32], &[i32]) = (&[3, 0], &[0, 5]);
        // x and its copy agree (1), both are orthogonal to y (0): their medians are 1 (upper
        // median of 0 and 1), y's is 0; the median of 1, 1, 0 is 1.
        assert_eq!(sketch_agreement(&[x, x, y]), Some(1.0));
        // Each sketch has one opposite (-1) and two orthogonal ones (0): every median is 0.
        let (minus_x, minus_y): (&[i32], &[i32]) = (&[-3, 0], &[0, -5]);
        assert_eq!(sketch_agreement(&[x, minus_x, y, minus_y]), Some(0.0));
        assert_eq!(sketch_agreement(&[x, minus_x]), Some(-1.0));
        // Zero sketches have no direction and are left out.
        let zero: &[i32] = &[0, 0];
        assert_eq!(sketch_agreement(&[zero, x, zero]), None);
        assert_eq!(sketch_agreement(&[zero, x, x]), Some(1.0));
        assert_eq!(sketch_agreement(&[]), None);
    }

    proptest::proptest! {
        /// Whichever path computes them, the nearest distances are those of exact `i128` dot
        /// products, bit for bit.
        #[test]
        fn the_fast_nearest_distance_is_exact(
            sketches in proptest::collection::vec(
                proptest::collection::vec(-200i32..200, 1..40),
                0..12,
            ),
            scale in proptest::prop_oneof![proptest::strategy::Just(1i32), 1i32..20_000],
        ) {
            let sketches: Vec<Vec<i32>> = sketches
                .iter()
                .map(|s| s.iter().map(|v| v.saturating_mul(scale)).collect())
                .collect();
            let refs: Vec<&[i32]> = sketches.iter().map(|s| &s[..]).collect();
            let squares: Vec<i128> = refs.iter().map(|s| exact_dot(s, s)).collect();
            let n = refs.len();
            let expected: Vec<f64> = (0..n)
                .map(|i| {
                    let nearest = (0..n)
                        .filter(|&j| j != i)
                        .map(|j| {
                            if squares[i] == 0 || squares[j] == 0 {
                                return 1.0;
                            }
                            let cos = exact_dot(refs[i], refs[j]) as f64
                                / ((squares[i] as f64).sqrt() * (squares[j] as f64).sqrt());
                            (1.0 - cos).clamp(0.0, 2.0)
                        })
                        .fold(f64::INFINITY, f64::min);
                    if nearest.is_finite() { nearest } else { 1.0 }
                })
                .collect();
            proptest::prop_assert_eq!(nearest_sketch_cosine_distances(&refs), expected);
        }

        /// Fewer than half the sketches, copies of one (zero included), cannot carry the
        /// agreement outside the range of the other sketches' cosines with each other.
        #[test]
        fn a_minority_keeps_the_agreement_within_the_others_cosines(
            honest in proptest::collection::vec(
                proptest::collection::vec(-127i32..=127, 8),
                5..12,
            ),
            hostile in proptest::collection::vec(-127i32..=127, 8),
            copies in 0usize..10,
        ) {
            let honest: Vec<Vec<i32>> =
                honest.into_iter().filter(|s| s.iter().any(|v| *v != 0)).collect();
            // Colluders sending one sketch, which agree with each other perfectly; at most
            // honest - 2 of them: fewer than half of every honest sketch's partners, and of all
            // the sketches.
            let k = copies.min(honest.len().saturating_sub(2));
            let hostile = vec![hostile; k];
            proptest::prop_assume!(honest.len() >= 3);
            let mut cosines = Vec::new();
            for_each_sketch_pair(
                &honest.iter().map(Vec::as_slice).collect::<Vec<_>>(),
                |_, _, cosine| cosines.extend(cosine),
            );
            let low = cosines.iter().copied().fold(f64::INFINITY, f64::min);
            let high = cosines.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let all: Vec<&[i32]> = honest
                .iter()
                .chain(&hostile)
                .map(Vec::as_slice)
                .collect();
            let agreement = sketch_agreement(&all).unwrap();
            proptest::prop_assert!(
                (low..=high).contains(&agreement),
                "{agreement} outside {low}..={high}"
            );
        }
    }

    fn commitment(member: &str, sketch: &[i32]) -> pb::Commitment {
        pb::Commitment {
            member: member.into(),
            sketch: crate::testing::packed(sketch),
            ..Default::default()
        }
    }

    #[test]
    fn consensus_adds_the_rounded_mean_of_the_accepted() {
        let a = commitment("a", &[3, -3, 1]);
        let b = commitment("b", &[4, -4, 0]);
        // Means 3.5, -3.5, 0.5 round half away from zero: 4, -4, 1.
        let c1 = extend_consensus(&pb::ConsensusSketch::default(), 1, &[&a, &b], &[]);
        assert_eq!(
            (c1.sum.clone(), c1.rounds, c1.last_round),
            (vec![4, -4, 1], 1, 1)
        );
        // Nobody accepted: nothing changes (no coordinates, so no previous change either).
        assert_eq!(extend_consensus(&c1, 2, &[], &[]), c1);
        let c3 = extend_consensus(&c1, 3, &[&a], &[]);
        assert_eq!((c3.sum, c3.rounds, c3.last_round), (vec![7, -7, 2], 2, 3));
    }

    #[test]
    fn history_sums_sketches_per_member_in_key_order() {
        let round_one = [commitment("a", &[1, 2]), commitment("c", &[-3, 0])];
        let h1 = extend_history(&pb::SketchHistory::default(), 1, &round_one);
        assert!(h1.entries.iter().all(|e| e.last_round == 1));
        let members: Vec<&str> = h1.entries.iter().map(|e| e.member.as_str()).collect();
        assert_eq!(members, ["a", "c"]);
        // Round 2: "b" is new, "a" commits a longer sketch, "c" sits out.
        let round_two = [commitment("a", &[10, 20, 5]), commitment("b", &[7, 7])];
        let h2 = extend_history(&h1, 2, &round_two);
        let entries: Vec<(&str, u32, Vec<i64>, u64)> = h2
            .entries
            .iter()
            .map(|e| (e.member.as_str(), e.rounds, e.sum.clone(), e.last_round))
            .collect();
        assert_eq!(
            entries,
            vec![
                ("a", 2, vec![11, 22, 5], 2),
                ("b", 1, vec![7, 7], 2),
                ("c", 1, vec![-3, 0], 1),
            ]
        );
        assert_eq!(add_sketch(&[i64::MAX], &[1]), vec![i64::MAX]);
    }

    /// The cumulative feature of `now` after `history`.
    fn cumulative(now: &[pb::Commitment], history: &pb::SketchHistory) -> Vec<f64> {
        commitment_feature(
            pb::Feature::CUMULATIVE_SKETCH_COSINE_DISTANCE,
            now,
            history,
            &[],
            &[],
        )
    }

    #[test]
    fn a_member_that_sat_out_rounds_is_measured_over_its_own() {
        // Round 1: a and b go along (1, 0), both accepted; d is not drawn.
        let history = extend_after_verdict(
            &pb::SketchHistory::default(),
            1,
            &[commitment("a", &[1, 0]), commitment("b", &[1, 0])],
            &["a".to_owned(), "b".to_owned()],
            &[],
        );
        // Round 2: a and the newcomer d go along (0, 1); b is not drawn.
        let now = [commitment("a", &[0, 1]), commitment("d", &[0, 1])];
        // a is measured over rounds 1 and 2, d over round 2 alone: both exactly on their
        // centre. Against the consortium's consensus of both rounds, (2, 2), d's (0, 1) would
        // have stood 1 - 1/sqrt(2) = 0.29 away for having sat out round 1.
        assert_eq!(
            cumulative_centres(&now, &history),
            vec![vec![2, 2], vec![0, 2]]
        );
        let d = cumulative(&now, &history);
        assert!(d.iter().all(|x| *x < 1e-15), "{d:?}");
        // After round 2 each member's consensus covers its own rounds; b's stays round 1's.
        let after = extend_after_verdict(&history, 2, &now, &["a".to_owned(), "d".to_owned()], &[]);
        let consensus: Vec<(&str, Vec<i64>)> = after
            .entries
            .iter()
            .map(|e| (e.member.as_str(), e.consensus.to_vec()))
            .collect();
        // (Kept without trailing zeros, as the ledger restores them.)
        assert_eq!(
            consensus,
            vec![("a", vec![1, 1]), ("b", vec![1]), ("d", vec![0, 1])]
        );
        assert_eq!(after.get_consensus().sum, vec![1, 1]);
        // A round that accepts nobody adds to nobody's consensus, its sketches still count.
        let none = extend_after_verdict(&after, 3, &[commitment("b", &[5, 5])], &[], &[]);
        let b = &none.entries[1];
        assert_eq!(
            (b.sum.to_vec(), b.consensus.to_vec()),
            (vec![6, 5], vec![1])
        );
    }

    #[test]
    fn cumulative_distance_known_answers() {
        // Round 1: a and b went along (1, 0), c went against it (-1, 0) and was excluded, so
        // the consensus is the mean of a and b: (1, 0).
        let history = extend_after_verdict(
            &pb::SketchHistory::default(),
            1,
            &[
                commitment("a", &[1, 0]),
                commitment("b", &[1, 0]),
                commitment("c", &[-1, 0]),
            ],
            &["a".to_owned(), "b".to_owned()],
            &[],
        );
        assert_eq!(history.get_consensus().sum, vec![1, 0]);
        assert_eq!(history.get_consensus().rounds, 1);
        // This round everybody commits (0, 1): alone, nobody stands out.
        let now = [
            commitment("a", &[0, 1]),
            commitment("b", &[0, 1]),
            commitment("c", &[0, 1]),
        ];
        let sums = cumulative_sketches(&now, &history);
        assert_eq!(sums, vec![vec![1, 1], vec![1, 1], vec![-1, 1]]);
        // Each centre is 2 x the consensus of the member's earlier rounds (round 1 for all
        // three, c included: it committed) + the doubled median of this round: (2, 2); c's sum
        // (-1, 1) is orthogonal to it.
        assert_eq!(
            cumulative_centres(&now, &history),
            vec![vec![2, 2], vec![2, 2], vec![2, 2]]
        );
        let d = cumulative(&now, &history);
        // sqrt(2) * sqrt(8) rounds: a and b are 0 up to one ulp.
        assert!(d[0] < 1e-15 && d[0] == d[1], "{d:?}");
        assert!((d[2] - 1.0).abs() < 1e-12, "{d:?}");
        let alone = commitment_feature(
            pb::Feature::SKETCH_COSINE_DISTANCE,
            &now,
            &history,
            &[],
            &[],
        );
        assert_eq!(alone, vec![0.0, 0.0, 0.0]);
        // Without history the cumulative feature is the per-round one.
        let fresh = commitment_feature(
            pb::Feature::CUMULATIVE_SKETCH_COSINE_DISTANCE,
            &now,
            &pb::SketchHistory::default(),
            &[],
            &[],
        );
        assert_eq!(fresh, alone);
    }
}
