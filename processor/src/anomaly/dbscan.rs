//! DBSCAN (Ester et al., 1996) over standardized member features.
//!
//! Each member is a point whose coordinates are its feature values, every feature standardized
//! over the round (`(x - mean) / max(std, 5 % |mean|, floor)`, see
//! [`super::stats::standardize`], with the feature's own floor, [`super::features::scale_floor`];
//! a constant feature becomes 0), or, when the configuration asks for it
//! (`DbscanConfig.robust`), robustly, as the modified z-score does (`(x - median) / s`,
//! [`super::stats::robust_standardize`]). A column's centre and scale come from the members it
//! counts ([`Column::left_out`]).
//!
//! Why robust: a fraction `p` of outliers a distance `d` from the honest members inflates the
//! standard deviation to about `sqrt(p (1 - p)) d`, so the gap between the two groups can never
//! exceed `1 / sqrt(p (1 - p))` standardized units, 2.18 at `p` = 30 %, whatever `d`. With a
//! radius near that, three noise senders among ten bridged into the honest cluster in 21 of 54
//! member-rounds on the attack benchmark (IID shards, 256 sampled coordinates, radius 2.0). The
//! robust scale comes from the honest majority and leaves the gap as wide as it is. Two points are neighbours when their Euclidean distance is at most `eps`
//! (compared squared, no rounding of a square root involved); a point's neighbourhood includes
//! itself. A point with at least `min_points`
//! neighbours is a core point; clusters are the core points connected through neighbourhoods,
//! plus the border points next to them; the rest is noise.
//!
//! Flagging: noise is flagged, and so are the members of any cluster smaller than the largest
//! one (colluding attackers that send near-identical updates form a small cluster of their own
//! instead of being noise). Clusters tied for largest are all kept. A member's score is its core
//! distance: the distance to its `(min_points - 1)`-th nearest other member (to the farthest one
//! when there are fewer others, 0 when `min_points <= 1`).
//!
//! Clusters are grown from members in index order (the caller numbers members in key order), so
//! the labelling, like everything here, is deterministic.
//!
//! ```
//! use bcfl_processor::anomaly::dbscan::{dbscan, Label};
//!
//! let points = vec![vec![0.0], vec![0.1], vec![0.2], vec![5.0]];
//! let labels = dbscan(&points, 0.5, 2);
//! assert_eq!(labels, vec![Label::Cluster(0), Label::Cluster(0), Label::Cluster(0), Label::Noise]);
//! ```

use super::stats::Column;

/// Where DBSCAN put a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    /// Member of the cluster with this id (ids count from 0 in discovery order).
    Cluster(usize),
    /// Not density-reachable from any core point.
    Noise,
}

/// Squared Euclidean distance, summed over coordinates in order.
fn distance_squared(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |acc, (x, y)| {
        let d = x - y;
        acc + d * d
    })
}

/// Indices of the points within `eps` of point `p` (itself included), ascending.
fn neighbours(points: &[Vec<f64>], p: usize, eps_squared: f64) -> Vec<usize> {
    (0..points.len())
        .filter(|&q| distance_squared(&points[p], &points[q]) <= eps_squared)
        .collect()
}

/// Labels every point (all with the same dimension).
pub fn dbscan(points: &[Vec<f64>], eps: f64, min_points: usize) -> Vec<Label> {
    let eps_squared = eps * eps;
    let mut labels: Vec<Option<Label>> = vec![None; points.len()];
    let mut next_cluster = 0;
    for p in 0..points.len() {
        if labels[p].is_some() {
            continue;
        }
        let seeds = neighbours(points, p, eps_squared);
        if seeds.len() < min_points {
            labels[p] = Some(Label::Noise);
            continue;
        }
        let cluster = Label::Cluster(next_cluster);
        next_cluster += 1;
        labels[p] = Some(cluster);
        let mut queue = seeds;
        let mut head = 0;
        while head < queue.len() {
            let q = queue[head];
            head += 1;
            match labels[q] {
                Some(Label::Cluster(_)) => continue,
                Some(Label::Noise) => {
                    // A border point: it joins, but does not expand the cluster.
                    labels[q] = Some(cluster);
                    continue;
                }
                None => labels[q] = Some(cluster),
            }
            let reach = neighbours(points, q, eps_squared);
            if reach.len() >= min_points {
                queue.extend(
                    reach
                        .into_iter()
                        .filter(|r| !matches!(labels[*r], Some(Label::Cluster(_)))),
                );
            }
        }
    }
    labels
        .into_iter()
        .map(|l| l.unwrap_or(Label::Noise))
        .collect()
}

/// Core distance of every point (see the module docs).
pub fn core_distances(points: &[Vec<f64>], min_points: usize) -> Vec<f64> {
    (0..points.len())
        .map(|p| {
            if min_points <= 1 || points.len() < 2 {
                return 0.0;
            }
            let mut d: Vec<f64> = (0..points.len())
                .filter(|&q| q != p)
                .map(|q| distance_squared(&points[p], &points[q]))
                .collect();
            d.sort_by(f64::total_cmp);
            let rank = (min_points - 1).min(d.len()) - 1;
            d[rank].sqrt()
        })
        .collect()
}

/// Which labels are flagged: noise, and clusters smaller than the largest.
pub fn flagged(labels: &[Label]) -> Vec<bool> {
    let clusters = labels
        .iter()
        .filter_map(|l| match l {
            Label::Cluster(c) => Some(*c + 1),
            Label::Noise => None,
        })
        .max()
        .unwrap_or(0);
    let mut sizes = vec![0usize; clusters];
    for l in labels {
        if let Label::Cluster(c) = l {
            sizes[*c] += 1;
        }
    }
    let largest = sizes.iter().copied().max().unwrap_or(0);
    labels
        .iter()
        .map(|l| match l {
            Label::Cluster(c) => sizes[*c] < largest,
            Label::Noise => true,
        })
        .collect()
}

/// Builds points from feature columns (each one value per member), standardizing each column
/// with its floor and the centre and scale of the members it counts: by mean and standard
/// deviation, or by median and robust scale when `robust`.
pub fn standardized_points(columns: &[Column], members: usize, robust: bool) -> Vec<Vec<f64>> {
    let standardized: Vec<Vec<f64>> = columns
        .iter()
        .map(|c| {
            if robust {
                c.robust_standardized()
            } else {
                c.standardized()
            }
        })
        .collect();
    (0..members)
        .map(|m| standardized.iter().map(|c| c[m]).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_clusters_and_noise_known_answer() {
        let points: Vec<Vec<f64>> = [
            [0.0, 0.0],
            [0.0, 1.0],
            [1.0, 0.0],
            [10.0, 10.0],
            [10.0, 11.0],
            [5.0, 5.0],
        ]
        .iter()
        .map(|p| p.to_vec())
        .collect();
        let labels = dbscan(&points, 1.0, 2);
        use Label::*;
        assert_eq!(
            labels,
            vec![
                Cluster(0),
                Cluster(0),
                Cluster(0),
                Cluster(1),
                Cluster(1),
                Noise
            ]
        );
        assert_eq!(
            flagged(&labels),
            vec![false, false, false, true, true, true]
        );
        // sqrt(2) > 1: with min_points 3, (0,1) and (1,0) reach only the origin, a core point.
        let labels = dbscan(&points, 1.0, 3);
        assert_eq!(
            labels,
            vec![Cluster(0), Cluster(0), Cluster(0), Noise, Noise, Noise]
        );
    }

    #[test]
    fn border_point_joins_without_expanding() {
        // 0..=3 are core; 1.9 has 3 neighbours (< 4): a border point; 2.8 is within eps of the
        // border point only, so it stays noise.
        let points: Vec<Vec<f64>> = [0.0, 0.2, 0.5, 1.0, 1.9, 2.8]
            .iter()
            .map(|x| vec![*x])
            .collect();
        let labels = dbscan(&points, 1.0, 4);
        use Label::*;
        let c = Cluster(0);
        assert_eq!(labels, vec![c, c, c, c, c, Noise]);
    }

    #[test]
    fn core_distance_known_answer() {
        let points: Vec<Vec<f64>> = [0.0, 3.0, 4.0].iter().map(|x| vec![*x]).collect();
        assert_eq!(core_distances(&points, 2), vec![3.0, 1.0, 1.0]);
        assert_eq!(core_distances(&points, 3), vec![4.0, 3.0, 4.0]);
        assert_eq!(core_distances(&points, 9), vec![4.0, 3.0, 4.0]);
        assert_eq!(core_distances(&points, 1), vec![0.0; 3]);
    }

    #[test]
    fn ties_for_largest_cluster_are_kept() {
        use Label::*;
        assert_eq!(
            flagged(&[Cluster(0), Cluster(1), Cluster(0), Cluster(1)]),
            vec![false; 4]
        );
        assert_eq!(flagged(&[Noise, Noise]), vec![true, true]);
        assert!(flagged(&[]).is_empty());
    }

    /// Three outliers among ten: the standard deviation they inflate caps the gap at about
    /// 2.2 standardized units, so a radius of 2.5 bridges them into the honest cluster; the
    /// robust scale keeps them 35 units out, a small cluster of their own.
    #[test]
    fn robust_standardization_keeps_a_large_outlier_group_apart() {
        let values = vec![0.20, 0.21, 0.19, 0.22, 0.18, 0.20, 0.21, 1.0, 1.02, 0.98];
        let columns = [Column::new(values)];
        let classic = standardized_points(&columns, 10, false);
        assert!((classic[7][0] - classic[0][0]) < 2.5, "{classic:?}");
        assert_eq!(flagged(&dbscan(&classic, 2.5, 2)), vec![false; 10]);
        let robust = standardized_points(&columns, 10, true);
        assert!((robust[7][0] - robust[0][0]) > 30.0, "{robust:?}");
        let mut expected = vec![false; 7];
        expected.extend([true; 3]);
        assert_eq!(flagged(&dbscan(&robust, 2.5, 2)), expected);
    }
}
