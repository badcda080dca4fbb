//! Classification scores: accuracy, macro-F1 and the confusion matrix.

use serde::{Deserialize, Serialize};

/// Scores of predictions against labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Number of examples scored.
    pub examples: usize,
    /// Fraction predicted correctly.
    pub accuracy: f64,
    /// Unweighted mean over classes of F1 (a class never predicted nor present counts 0).
    pub macro_f1: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

impl Scores {
    /// Scores `predicted` against `actual` (both class indices below `classes`).
    pub fn new(actual: &[usize], predicted: &[usize], classes: usize) -> Self {
        assert_eq!(actual.len(), predicted.len(), "one prediction per label");
        let mut confusion = vec![vec![0usize; classes]; classes];
        for (&a, &p) in actual.iter().zip(predicted) {
            confusion[a][p] += 1;
        }
        let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
        let f1_sum: f64 = (0..classes)
            .map(|c| {
                let tp = confusion[c][c] as f64;
                let predicted_c: usize = confusion.iter().map(|row| row[c]).sum();
                let actual_c: usize = confusion[c].iter().sum();
                let denominator = (predicted_c + actual_c) as f64;
                if denominator == 0.0 {
                    0.0
                } else {
                    2.0 * tp / denominator
                }
            })
            .sum();
        let examples = actual.len();
        Self {
            examples,
            accuracy: if examples == 0 {
                0.0
            } else {
                correct as f64 / examples as f64
            },
            macro_f1: if classes == 0 {
                0.0
            } else {
                f1_sum / classes as f64
            },
            confusion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        // Class 0: tp 2, fp 1, fn 0 -> F1 0.8; class 1: tp 1, fp 0, fn 1 -> F1 2/3;
        // class 2: never present nor predicted -> 0.
        let scores = Scores::new(&[0, 0, 1, 1], &[0, 0, 1, 0], 3);
        assert_eq!(scores.accuracy, 0.75);
        assert!((scores.macro_f1 - (0.8 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert_eq!(
            scores.confusion,
            vec![vec![2, 0, 0], vec![1, 1, 0], vec![0, 0, 0]]
        );
    }

    #[test]
    fn perfect_predictions_score_one() {
        let labels = [0, 1, 2, 1];
        let scores = Scores::new(&labels, &labels, 3);
        assert_eq!((scores.accuracy, scores.macro_f1), (1.0, 1.0));
    }
}
