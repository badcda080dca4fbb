//! Per-member features computed from a round's on-chain evidence.
//!
//! Members are the round's committers in key order; each feature is one `f64` per member,
//! computed from integer state values with a fixed order of operations:
//!
//! | feature | value |
//! | --- | --- |
//! | `UPDATE_NORM` | `norm_micro / 1e6` |
//! | `SKETCH_COSINE_DISTANCE` | `1 - cos(sketch, coordinate-wise median sketch)`, in [0, 2]; 1 when either vector is zero |
//! | `TRAINING_LOSS` | `loss_micro / 1e6` |
//! | `SAMPLE_COUNT` | `num_samples` |
//! | `BANDWIDTH_IN` | median over measured links into the member of each link's median `bytes_per_sec`; 0 without any |
//! | `BANDWIDTH_OUT` | the same over links out of the member |
//! | `PAGERANK_SCORE` | the member's PageRank (see [`super::pagerank`]) |
//!
//! The cosine uses exact integer arithmetic up to one final division: the median sketch is kept
//! doubled (the sum of the two middle values for an even count), dot products and squared norms
//! are `i128` sums, and `cos = dot / (sqrt(|s|^2) * sqrt(|m|^2))`. A sketch shorter than the
//! others counts as zero-padded.

use bcfl_protos::bcfl as pb;

use super::stats::median;

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

/// The measured links among `members` (sorted keys) as `(from, to, bandwidth)` index triples,
/// in (from, to) order. Links with an endpoint outside `members` or no bandwidth are left out.
pub fn bandwidth_edges(members: &[String], links: &[pb::Link]) -> Vec<(usize, usize, f64)> {
    let index = |key: &str| members.binary_search_by(|m| m.as_str().cmp(key)).ok();
    let mut edges: Vec<(usize, usize, f64)> = links
        .iter()
        .filter_map(|l| Some((index(&l.from)?, index(&l.to)?, link_bandwidth(l)?)))
        .collect();
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

/// The coordinate-wise median of the sketches, doubled so that it stays an integer.
fn doubled_median_sketch(sketches: &[&[i32]]) -> Vec<i64> {
    let len = sketches.iter().map(|s| s.len()).max().unwrap_or(0);
    (0..len)
        .map(|k| {
            let mut column: Vec<i64> = sketches
                .iter()
                .map(|s| i64::from(s.get(k).copied().unwrap_or(0)))
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

/// The cosine distance of every sketch to the coordinate-wise median sketch.
pub fn sketch_cosine_distances(sketches: &[&[i32]]) -> Vec<f64> {
    let centre = doubled_median_sketch(sketches);
    let centre_sq: i128 = centre.iter().map(|c| i128::from(*c) * i128::from(*c)).sum();
    sketches
        .iter()
        .map(|s| {
            let (mut dot, mut sq) = (0i128, 0i128);
            for (k, c) in centre.iter().enumerate() {
                let v = i128::from(s.get(k).copied().unwrap_or(0));
                dot += v * i128::from(*c);
                sq += v * v;
            }
            if sq == 0 || centre_sq == 0 {
                return 1.0;
            }
            let cos = dot as f64 / ((sq as f64).sqrt() * (centre_sq as f64).sqrt());
            (1.0 - cos).clamp(0.0, 2.0)
        })
        .collect()
}

/// One feature column over `commitments` (sorted by member), given the bandwidth edges among
/// them and their PageRank scores.
pub fn commitment_feature(
    feature: pb::Feature,
    commitments: &[pb::Commitment],
    edges: &[(usize, usize, f64)],
    pagerank: &[f64],
) -> Vec<f64> {
    use pb::Feature::*;
    let n = commitments.len();
    match feature {
        UPDATE_NORM => commitments
            .iter()
            .map(|c| c.norm_micro as f64 / 1e6)
            .collect(),
        SKETCH_COSINE_DISTANCE => {
            let sketches: Vec<&[i32]> = commitments.iter().map(|c| &c.sketch[..]).collect();
            sketch_cosine_distances(&sketches)
        }
        TRAINING_LOSS => commitments
            .iter()
            .map(|c| c.loss_micro as f64 / 1e6)
            .collect(),
        SAMPLE_COUNT => commitments.iter().map(|c| c.num_samples as f64).collect(),
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
        let edges = bandwidth_edges(&members, &links);
        assert_eq!(edges, vec![(0, 1, 12.0), (0, 2, 20.0), (2, 0, 30.0)]);
        assert_eq!(bandwidth_feature(3, &edges, false), vec![16.0, 0.0, 30.0]);
        assert_eq!(bandwidth_feature(3, &edges, true), vec![30.0, 12.0, 20.0]);
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
}
