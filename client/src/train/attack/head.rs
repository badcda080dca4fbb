//! The classification head over frozen embeddings: a `classes x dim` linear layer with a bias,
//! trained by mini-batch SGD on softmax cross-entropy.
//!
//! It is the head [`crate::train::bert::BertClassifier`] puts on the pooled embedding (tensors
//! `classifier.weight` `[classes, dim]` and `classifier.bias` `[classes]`, the names an update
//! carries), trained without the encoder in the loop: with the encoder frozen, training the head
//! is multinomial logistic regression on the cached embeddings, fast enough for a benchmark over
//! many seeds on a CPU. Randomness (the batch order) comes from a seeded SplitMix64, so a seed
//! gives the same head every time.
//!
//! [`HeadTrainer`] is a member's head and shard as the round library's
//! [`Trainer`]: its update is the head's two tensors, so the
//! attack experiments run their rounds through [`crate::round::simulation`] like every other
//! federated run. A label flipper is a [`HeadTrainer::label_flipped`] trainer.

use bcfl_processor::anomaly::simulate::Rng;
use tch::{Device, Kind, Tensor};

use super::super::metrics::Scores;
use super::super::trainer::Evaluation;
use super::super::{Error, Result};
use super::embed::Embeddings;
use crate::round::model::{Trained, Trainer};
use bcfl_fed::update::Update;

/// Name of the weight tensor in an update.
pub const WEIGHT: &str = "classifier.weight";
/// Name of the bias tensor in an update.
pub const BIAS: &str = "classifier.bias";

/// Local training settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LocalConfig {
    /// Passes over the shard.
    pub epochs: usize,
    /// Examples per SGD step.
    pub batch_size: usize,
    /// SGD step size.
    pub learning_rate: f64,
}

impl Default for LocalConfig {
    /// 2 epochs, batches of 16, learning rate 0.5.
    fn default() -> Self {
        Self {
            epochs: 2,
            batch_size: 16,
            learning_rate: 0.5,
        }
    }
}

/// What the mislabelled-change method's reference rows are taken from, on the root set's
/// features ([`reference_directions`], [`bcfl_fed::reference`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ReferenceDirections {
    /// The root set's class means, the nearest-centroid classifier
    /// (`bcfl_fed::reference::class_directions`).
    #[default]
    ClassMeans,
    /// A linear head trained on the root set (`bcfl_fed::reference::classifier_directions`).
    Classifier,
}

/// The root set's classifier ([`ReferenceDirections::Classifier`]): passes over the root set.
pub const REFERENCE_EPOCHS: usize = 5;

/// The root set's classifier's step size times the features' mean square: the same
/// trajectory of logits whatever the features' scale (0.5, the members' rate on the attack
/// benchmark, whose features' mean square is about 6).
pub const REFERENCE_STEP: f64 = 3.0;

/// The mislabelled-change method's reference rows from the root set `rows` of `features`
/// (every class among them): the class means' directions, or those of a linear head trained
/// from zero on the rows for [`REFERENCE_EPOCHS`] (batches of 16, step [`REFERENCE_STEP`] over
/// the rows' mean square, batch order from a fixed seed).
pub fn reference_directions(
    features: &Embeddings,
    rows: &[usize],
    kind: ReferenceDirections,
) -> Result<Vec<Vec<f64>>> {
    let means = features.class_means(rows)?;
    Ok(match kind {
        ReferenceDirections::ClassMeans => bcfl_fed::reference::class_directions(&means)?,
        ReferenceDirections::Classifier => {
            let square = rows
                .iter()
                .map(|&i| {
                    features
                        .row(i)
                        .iter()
                        .map(|v| f64::from(*v).powi(2))
                        .sum::<f64>()
                })
                .sum::<f64>()
                / rows.len().max(1) as f64;
            if !(square.is_finite() && square > 0.0) {
                return Err(Error::Config(format!(
                    "the root set's features have mean square {square}: no classifier to train"
                )));
            }
            let config = LocalConfig {
                epochs: REFERENCE_EPOCHS,
                batch_size: 16,
                learning_rate: REFERENCE_STEP / square,
            };
            let (x, y) = features.tensors(rows);
            let (head, _) = LinearHead::zeros(features.classes(), features.dim).train(
                &x,
                &y,
                &config,
                &mut Rng::new(0),
            )?;
            let weights: Vec<Vec<f64>> = head
                .weight
                .chunks(head.dim)
                .map(|row| row.iter().map(|&v| f64::from(v)).collect())
                .collect();
            bcfl_fed::reference::classifier_directions(&weights, &means)?
        }
    })
}

/// A linear head: `logits = W x + b`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearHead {
    /// Number of classes (rows of `W`).
    pub classes: usize,
    /// Input dimension (columns of `W`).
    pub dim: usize,
    /// `W`, row-major `classes x dim`.
    pub weight: Vec<f32>,
    /// `b`, one per class.
    pub bias: Vec<f32>,
}

impl LinearHead {
    /// The all-zero head (every class equally likely).
    pub fn zeros(classes: usize, dim: usize) -> Self {
        Self {
            classes,
            dim,
            weight: vec![0.0; classes * dim],
            bias: vec![0.0; classes],
        }
    }

    /// The head's tensors as an update (`classifier.bias`, `classifier.weight`).
    pub fn to_update(&self) -> Update {
        let mut u = Update::default();
        u.tensors.insert(
            WEIGHT.into(),
            (vec![self.classes, self.dim], self.weight.clone()),
        );
        u.tensors
            .insert(BIAS.into(), (vec![self.classes], self.bias.clone()));
        u
    }

    /// A head from an update holding exactly its two tensors with these shapes.
    pub fn from_update(update: &Update, classes: usize, dim: usize) -> Result<Self> {
        let get = |name: &str, shape: Vec<usize>| -> Result<Vec<f32>> {
            match update.tensors.get(name) {
                Some((s, v)) if *s == shape => Ok(v.clone()),
                Some((s, _)) => Err(Error::Update(format!(
                    "{name}: shape {s:?}, want {shape:?}"
                ))),
                None => Err(Error::Update(format!("the update has no tensor {name}"))),
            }
        };
        if update.tensors.len() != 2 {
            return Err(Error::Update(format!(
                "{} tensors, a head has 2",
                update.tensors.len()
            )));
        }
        Ok(Self {
            classes,
            dim,
            weight: get(WEIGHT, vec![classes, dim])?,
            bias: get(BIAS, vec![classes])?,
        })
    }

    /// The parameters flattened in update order: the bias, then the weight (names sorted).
    pub fn flat(&self) -> Vec<f64> {
        self.bias
            .iter()
            .chain(&self.weight)
            .map(|&v| f64::from(v))
            .collect()
    }

    /// A head of this shape from [`Self::flat`] values.
    pub fn from_flat(&self, flat: &[f64]) -> Self {
        let (bias, weight) = flat.split_at(self.classes);
        Self {
            classes: self.classes,
            dim: self.dim,
            weight: weight.iter().map(|&v| v as f32).collect(),
            bias: bias.iter().map(|&v| v as f32).collect(),
        }
    }

    /// `self + delta` (a flat update, as [`Self::flat`]).
    pub fn plus(&self, delta: &[f64]) -> Self {
        let sum: Vec<f64> = self.flat().iter().zip(delta).map(|(a, d)| a + d).collect();
        self.from_flat(&sum)
    }

    fn logits(&self, x: &[f32], out: &mut [f64]) {
        for (c, o) in out.iter_mut().enumerate() {
            let row = &self.weight[c * self.dim..(c + 1) * self.dim];
            let dot: f32 = row.iter().zip(x).map(|(w, v)| w * v).sum();
            *o = f64::from(dot + self.bias[c]);
        }
    }

    /// Softmax probabilities in place; returns `-ln p[label]`.
    fn softmax_loss(logits: &mut [f64], label: usize) -> f64 {
        let max = logits.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let mut total = 0.0;
        for v in logits.iter_mut() {
            *v = (*v - max).exp();
            total += *v;
        }
        for v in logits.iter_mut() {
            *v /= total;
        }
        -(logits[label].max(1e-300)).ln()
    }

    /// Mean cross-entropy of the rows at `indices` with labels mapped by `relabel`.
    pub fn loss(
        &self,
        data: &Embeddings,
        indices: &[usize],
        relabel: impl Fn(usize) -> usize,
    ) -> f64 {
        let mut logits = vec![0.0; self.classes];
        let total: f64 = indices
            .iter()
            .map(|&i| {
                self.logits(data.row(i), &mut logits);
                Self::softmax_loss(&mut logits, relabel(data.labels[i]))
            })
            .sum();
        total / indices.len().max(1) as f64
    }

    /// Trains a copy of the head on examples `x` (`[rows, dim]`) with classes `y` (`[rows]`,
    /// `Int64`, see [`Embeddings::tensors`]); returns it and the mean loss of the last epoch.
    ///
    /// The arithmetic runs on libtorch (CPU): per batch `G = softmax(X W^T + b) - onehot(y)`,
    /// `W -= lr/|B| G^T X`, `b -= lr/|B| sum G`.
    pub fn train(
        &self,
        x: &Tensor,
        y: &Tensor,
        config: &LocalConfig,
        rng: &mut Rng,
    ) -> Result<(Self, f64)> {
        let _no_grad = tch::no_grad_guard();
        let (classes, dim) = (self.classes as i64, self.dim as i64);
        let rows = x.size().first().copied().unwrap_or(0);
        if x.size() != [rows, dim] || y.size() != [rows] {
            return Err(Error::Config(format!(
                "training data {:?} / {:?} for a head of dimension {dim}",
                x.size(),
                y.size()
            )));
        }
        let mut w = Tensor::from_slice(&self.weight).view([classes, dim]);
        let mut b = Tensor::from_slice(&self.bias);
        let mut order: Vec<i64> = (0..rows).collect();
        let mut last_loss = 0.0;
        for _ in 0..config.epochs {
            // Fisher-Yates shuffle of this epoch's order.
            for i in (1..order.len()).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            let mut epoch_loss = Tensor::zeros([], (Kind::Double, Device::Cpu));
            for batch in order.chunks(config.batch_size.max(1)) {
                let index = Tensor::from_slice(batch);
                let xb = x.index_select(0, &index);
                let yb = y.index_select(0, &index);
                let log_p = (xb.matmul(&w.tr()) + &b).log_softmax(-1, Kind::Float);
                epoch_loss -= log_p.gather(1, &yb.unsqueeze(1), false).sum(Kind::Double);
                let g = log_p.exp() - yb.one_hot(classes).to_kind(Kind::Float);
                let step = config.learning_rate / batch.len() as f64;
                w -= g.tr().matmul(&xb) * step;
                b -= g.sum_dim_intlist(0, false, Kind::Float) * step;
            }
            last_loss = f64::try_from(epoch_loss)? / order.len().max(1) as f64;
        }
        let flat = |t: &Tensor| Vec::<f32>::try_from(t.contiguous().view([-1]));
        Ok((
            Self {
                classes: self.classes,
                dim: self.dim,
                weight: flat(&w)?,
                bias: flat(&b)?,
            },
            last_loss,
        ))
    }

    /// The predicted class of every row.
    pub fn predict(&self, data: &Embeddings) -> Vec<usize> {
        let mut logits = vec![0.0; self.classes];
        (0..data.len())
            .map(|i| {
                self.logits(data.row(i), &mut logits);
                // The first class of largest logit.
                logits
                    .iter()
                    .enumerate()
                    .fold((0, f64::NEG_INFINITY), |best, (c, &v)| {
                        if v > best.1 {
                            (c, v)
                        } else {
                            best
                        }
                    })
                    .0
            })
            .collect()
    }

    /// Fraction of rows predicted right.
    pub fn accuracy(&self, data: &Embeddings) -> f64 {
        let right = self
            .predict(data)
            .iter()
            .zip(&data.labels)
            .filter(|(p, l)| p == l)
            .count();
        right as f64 / data.len().max(1) as f64
    }
}

/// A member's head training: its shard, local settings and optional held-out rows, as the
/// round library's [`Trainer`] (the update is the head, `classifier.bias` and
/// `classifier.weight`; the loss is the last epoch's mean; the seed orders the batches).
#[derive(Clone, Debug)]
pub struct HeadTrainer {
    shard: Embeddings,
    test: Option<Embeddings>,
    local: LocalConfig,
}

impl HeadTrainer {
    /// Trains on `shard` with `local`; scores on `test` when given.
    pub fn new(shard: Embeddings, test: Option<Embeddings>, local: LocalConfig) -> Result<Self> {
        if shard.is_empty() {
            return Err(Error::Config("a member's shard is empty".into()));
        }
        Ok(Self { shard, test, local })
    }

    /// The same member training on labels shifted by one class
    /// ([`flipped_label`](bcfl_processor::anomaly::attack::flipped_label)): the label-flip
    /// attack.
    pub fn label_flipped(mut self) -> Self {
        let classes = self.shard.classes();
        for label in &mut self.shard.labels {
            *label = bcfl_processor::anomaly::attack::flipped_label(*label, classes);
        }
        self
    }

    fn head(&self, update: &Update) -> Result<LinearHead> {
        LinearHead::from_update(update, self.shard.classes(), self.shard.dim)
    }
}

impl Trainer for HeadTrainer {
    fn train(&self, parent: &Update, _round: u64, seed: u64) -> crate::round::Result<Trained> {
        let all: Vec<usize> = (0..self.shard.len()).collect();
        let (x, y) = self.shard.tensors(&all);
        let (local, loss) = self
            .head(parent)?
            .train(&x, &y, &self.local, &mut Rng::new(seed))?;
        Ok(Trained {
            update: local.to_update(),
            loss,
            samples: self.shard.len() as u64,
        })
    }

    fn evaluate(&self, model: &Update) -> crate::round::Result<Option<Evaluation>> {
        let Some(test) = &self.test else {
            return Ok(None);
        };
        let head = self.head(model)?;
        let all: Vec<usize> = (0..test.len()).collect();
        Ok(Some(Evaluation {
            loss: head.loss(test, &all, |l| l),
            scores: Scores::new(&test.labels, &head.predict(test), test.classes()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two separable classes in 3 dimensions.
    fn toy() -> Embeddings {
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for i in 0..40 {
            let s = (i % 7) as f32 * 0.05;
            if i % 2 == 0 {
                values.extend([1.0 + s, 0.2, -0.1]);
                labels.push(0);
            } else {
                values.extend([-1.0 - s, 0.1, 0.3]);
                labels.push(1);
            }
        }
        Embeddings {
            dim: 3,
            values,
            labels,
            label_names: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn sgd_learns_a_separable_problem_and_is_reproducible() {
        let data = toy();
        let all: Vec<usize> = (0..data.len()).collect();
        let start = LinearHead::zeros(2, 3);
        assert_eq!(start.accuracy(&data), 0.5);
        let config = LocalConfig::default();
        let (x, y) = data.tensors(&all);
        let swapped = 1 - &y;
        let (trained, loss) = start.train(&x, &y, &config, &mut Rng::new(1)).unwrap();
        assert_eq!(trained.accuracy(&data), 1.0);
        assert!(loss < 0.3, "{loss}");
        assert!(trained.loss(&data, &all, |l| l) < loss);
        let (again, _) = start.train(&x, &y, &config, &mut Rng::new(1)).unwrap();
        assert_eq!(again, trained);
        // Trained on swapped labels, it learns the opposite.
        let (flipped, _) = start
            .train(&x, &swapped, &config, &mut Rng::new(1))
            .unwrap();
        assert_eq!(flipped.accuracy(&data), 0.0);
    }

    #[test]
    fn the_trainer_trains_the_head_and_a_label_flipper_learns_the_shifted_classes() {
        let data = toy();
        let trainer =
            HeadTrainer::new(data.clone(), Some(data.clone()), LocalConfig::default()).unwrap();
        let start = LinearHead::zeros(2, 3).to_update();
        let trained = trainer.train(&start, 1, 1).unwrap();
        assert_eq!(trained.samples, 40);
        let all: Vec<usize> = (0..data.len()).collect();
        let (x, y) = data.tensors(&all);
        let (direct, loss) = LinearHead::zeros(2, 3)
            .train(&x, &y, &LocalConfig::default(), &mut Rng::new(1))
            .unwrap();
        assert_eq!(trained.update, direct.to_update());
        assert_eq!(trained.loss, loss);
        let scored = trainer.evaluate(&trained.update).unwrap().unwrap();
        assert_eq!(scored.scores.accuracy, 1.0);
        let flipped = trainer.clone().label_flipped().train(&start, 1, 1).unwrap();
        let scored = trainer.evaluate(&flipped.update).unwrap().unwrap();
        assert_eq!(scored.scores.accuracy, 0.0);
        assert!(HeadTrainer::new(data.subset(&[]), None, LocalConfig::default()).is_err());
    }

    /// The classifier's reference rows sum to 0 over the classes and are orthogonal to the
    /// class means' centre; with every feature ten times larger their direction is the same
    /// (the step follows the features' mean square); one step on a shard of one class moves
    /// along them on true labels and against them on swapped ones, as with the class means'
    /// rows; zero features are refused.
    #[test]
    fn reference_directions_of_a_trained_classifier() {
        let data = toy();
        let all: Vec<usize> = (0..data.len()).collect();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let rows = reference_directions(&data, &all, ReferenceDirections::Classifier).unwrap();
        let means = data.class_means(&all).unwrap();
        let centre: Vec<f64> = (0..3).map(|j| (means[0][j] + means[1][j]) / 2.0).collect();
        for (a, b) in rows[0].iter().zip(&rows[1]) {
            assert!((a + b).abs() < 1e-9);
        }
        assert!(dot(&rows[0], &centre).abs() < 1e-9 && dot(&rows[0], &rows[0]) > 0.0);
        let mut larger = data.clone();
        larger.values.iter_mut().for_each(|v| *v *= 10.0);
        let scaled = reference_directions(&larger, &all, ReferenceDirections::Classifier).unwrap();
        let flat = |r: &[Vec<f64>]| r.concat();
        let (a, b) = (flat(&rows), flat(&scaled));
        let cosine = dot(&a, &b) / (dot(&a, &a) * dot(&b, &b)).sqrt();
        assert!(cosine > 1.0 - 1e-6, "{cosine}");
        let first: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| data.labels[i] == 0)
            .collect();
        let (x, y) = data.tensors(&first);
        let one = LocalConfig {
            epochs: 1,
            ..LocalConfig::default()
        };
        for kind in [
            ReferenceDirections::Classifier,
            ReferenceDirections::ClassMeans,
        ] {
            let rows = reference_directions(&data, &all, kind).unwrap();
            let margin = |labels: &Tensor| {
                let (head, _) = LinearHead::zeros(2, 3)
                    .train(&x, labels, &one, &mut Rng::new(3))
                    .unwrap();
                let weight: Vec<f64> = head.weight.iter().map(|&v| f64::from(v)).collect();
                dot(&weight, &flat(&rows))
            };
            assert!(margin(&y) > 0.0 && margin(&(1 - &y)) < 0.0, "{kind:?}");
        }
        let mut zero = data.clone();
        zero.values.iter_mut().for_each(|v| *v = 0.0);
        let err = reference_directions(&zero, &all, ReferenceDirections::Classifier).unwrap_err();
        assert!(err.to_string().contains("mean square 0"), "{err}");
    }

    #[test]
    fn update_and_flat_round_trip() {
        let data = toy();
        let all: Vec<usize> = (0..data.len()).collect();
        let (x, y) = data.tensors(&all);
        let (head, _) = LinearHead::zeros(2, 3)
            .train(&x, &y, &LocalConfig::default(), &mut Rng::new(2))
            .unwrap();
        assert!(LinearHead::zeros(2, 4)
            .train(&x, &y, &LocalConfig::default(), &mut Rng::new(2))
            .is_err());
        let back = LinearHead::from_update(&head.to_update(), 2, 3).unwrap();
        assert_eq!(back, head);
        assert_eq!(head.from_flat(&head.flat()), head);
        assert_eq!(
            head.flat()[..2],
            [f64::from(head.bias[0]), f64::from(head.bias[1])]
        );
        let doubled = head.plus(&head.flat());
        assert_eq!(doubled.weight[4], 2.0 * head.weight[4]);
        assert!(LinearHead::from_update(&head.to_update(), 3, 2).is_err());
    }
}
