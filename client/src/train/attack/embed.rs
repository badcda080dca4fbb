//! Pooled sentence embeddings of a labelled dataset from the frozen encoder, computed once and
//! cached.
//!
//! The attack experiment trains only the classification head, so every example's mean-pooled
//! embedding ([`BertClassifier::embed_t`], no dropout, no gradient) is the same in every round,
//! seed and scenario: it is computed once and kept in a cache file named after the SHA-256 of
//! (model weights digest, data file digest, sequence length). The file is one JSON header line
//! (`format`, `model_sha256`, `data_sha256`, `max_len`, `rows`, `dim`) followed by `rows x dim`
//! little-endian `f32`s; a file whose header does not match what is asked for is recomputed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::super::bert::BertClassifier;
use super::super::data::Dataset;
use super::super::tokenize::TextEncoder;
use super::super::{Error, Result};
use bcfl_fed::digest::sha256_hex;

/// The `format` of cache files.
pub const CACHE_FORMAT: &str = "bcfl-embeddings-v1";

/// One embedding per example, with its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    /// Dimension of each embedding.
    pub dim: usize,
    /// Row-major `rows x dim` values.
    pub values: Vec<f32>,
    /// Class of each row.
    pub labels: Vec<usize>,
    /// Class names.
    pub label_names: Vec<String>,
}

impl Embeddings {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.label_names.len()
    }

    /// The rows at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Self {
        let mut values = Vec::with_capacity(indices.len() * self.dim);
        for &i in indices {
            values.extend_from_slice(self.row(i));
        }
        Self {
            dim: self.dim,
            values,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            label_names: self.label_names.clone(),
        }
    }

    /// Each class's mean row over the rows at `indices` (the head's input averaged per class:
    /// what the mislabelled-change method's reference is made of, [`bcfl_fed::reference`]); an
    /// error naming a class none of them holds.
    pub fn class_means(&self, indices: &[usize]) -> Result<Vec<Vec<f64>>> {
        let mut counts = vec![0usize; self.classes()];
        indices.iter().for_each(|&i| counts[self.labels[i]] += 1);
        if let Some(c) = counts.iter().position(|&n| n == 0) {
            return Err(Error::Config(format!(
                "no example of class {:?} among the {} rows: every class needs at least one",
                self.label_names[c],
                indices.len()
            )));
        }
        let mut means = vec![vec![0.0f64; self.dim]; self.classes()];
        for &i in indices {
            let class = self.labels[i];
            for (m, v) in means[class].iter_mut().zip(self.row(i)) {
                *m += f64::from(*v) / counts[class] as f64;
            }
        }
        Ok(means)
    }

    /// The rows at `indices` as a `[rows, dim]` `f32` tensor and their classes as `Int64`.
    pub fn tensors(&self, indices: &[usize]) -> (tch::Tensor, tch::Tensor) {
        let subset = self.subset(indices);
        let labels: Vec<i64> = subset.labels.iter().map(|&l| l as i64).collect();
        (
            tch::Tensor::from_slice(&subset.values).view([indices.len() as i64, self.dim as i64]),
            tch::Tensor::from_slice(&labels),
        )
    }

    /// Embeds every example of `data` in batches of `batch_size`, without gradients.
    pub fn compute(
        model: &BertClassifier,
        encoder: &TextEncoder,
        data: &Dataset,
        batch_size: usize,
    ) -> Result<Self> {
        let dim = model.config().hidden_size as usize;
        let mut values = Vec::with_capacity(data.len() * dim);
        tch::no_grad(|| -> Result<()> {
            for chunk in data.examples.chunks(batch_size.max(1)) {
                let texts: Vec<&str> = chunk.iter().map(|e| e.text.as_str()).collect();
                let batch = encoder.encode(&texts, model.device())?;
                let pooled = model
                    .embed_t(&batch.ids, &batch.mask, false)
                    .to_device(tch::Device::Cpu)
                    .to_kind(tch::Kind::Float)
                    .contiguous()
                    .view([-1]);
                values.extend(Vec::<f32>::try_from(&pooled)?);
            }
            Ok(())
        })?;
        Ok(Self {
            dim,
            values,
            labels: data.examples.iter().map(|e| e.label).collect(),
            label_names: data.label_names.clone(),
        })
    }

    /// The cached embeddings of `data` under `cache_dir` for the model and data digests, or
    /// [`Self::compute`]d and written there. Returns them and whether they came from the cache.
    pub fn cached(
        cache_dir: &Path,
        key: &CacheKey,
        data: &Dataset,
        compute: impl FnOnce() -> Result<Self>,
    ) -> Result<(Self, bool)> {
        let path = key.path(cache_dir);
        if let Some(found) = read_cache(&path, key, data)? {
            return Ok((found, true));
        }
        let computed = compute()?;
        write_cache(&path, key, &computed)?;
        Ok((computed, false))
    }
}

/// What the cached embeddings depend on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    /// SHA-256 of the model weights.
    pub model_sha256: String,
    /// SHA-256 of the data file.
    pub data_sha256: String,
    /// Longest token sequence.
    pub max_len: usize,
}

impl CacheKey {
    /// The cache file under `dir` for this key.
    pub fn path(&self, dir: &Path) -> PathBuf {
        let digest = sha256_hex(
            format!(
                "{}\n{}\n{}",
                self.model_sha256, self.data_sha256, self.max_len
            )
            .as_bytes(),
        );
        dir.join(format!("embeddings-{}.bin", &digest[..16]))
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    #[serde(flatten)]
    key: CacheKey,
    rows: usize,
    dim: usize,
}

fn read_cache(path: &Path, key: &CacheKey, data: &Dataset) -> Result<Option<Embeddings>> {
    let Ok(bytes) = fs::read(path) else {
        return Ok(None);
    };
    let Some(newline) = bytes.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let Ok(header) = serde_json::from_slice::<Header>(&bytes[..newline]) else {
        return Ok(None);
    };
    let body = &bytes[newline + 1..];
    if header.format != CACHE_FORMAT
        || &header.key != key
        || header.rows != data.len()
        || body.len() != header.rows * header.dim * 4
    {
        tracing::info!(path = %path.display(), "embedding cache does not match, recomputing");
        return Ok(None);
    }
    let values = body
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Some(Embeddings {
        dim: header.dim,
        values,
        labels: data.examples.iter().map(|e| e.label).collect(),
        label_names: data.label_names.clone(),
    }))
}

fn write_cache(path: &Path, key: &CacheKey, embeddings: &Embeddings) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let header = Header {
        format: CACHE_FORMAT.into(),
        key: key.clone(),
        rows: embeddings.len(),
        dim: embeddings.dim,
    };
    let mut bytes = serde_json::to_vec(&header).map_err(|e| Error::json("cache header", e))?;
    bytes.push(b'\n');
    for v in &embeddings.values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    // Write to a temporary name, then rename: a concurrent reader never sees half a file.
    let partial = path.with_extension(format!("partial.{}", std::process::id()));
    let mut file = fs::File::create(&partial).map_err(|e| Error::io(&partial, e))?;
    file.write_all(&bytes).map_err(|e| Error::io(&partial, e))?;
    fs::rename(&partial, path).map_err(|e| Error::io(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::data::Example;

    fn dataset(n: usize) -> Dataset {
        Dataset {
            examples: (0..n)
                .map(|i| Example {
                    text: format!("text {i}"),
                    label: i % 2,
                })
                .collect(),
            label_names: vec!["a".into(), "b".into()],
        }
    }

    #[test]
    fn cache_round_trips_and_rejects_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let data = dataset(3);
        let key = CacheKey {
            model_sha256: "11".repeat(32),
            data_sha256: "22".repeat(32),
            max_len: 16,
        };
        let made = Embeddings {
            dim: 2,
            values: vec![1.0, -2.0, 0.5, 0.25, 3.0, 4.0],
            labels: vec![0, 1, 0],
            label_names: data.label_names.clone(),
        };
        let (first, hit) =
            Embeddings::cached(dir.path(), &key, &data, || Ok(made.clone())).unwrap();
        assert!(!hit);
        assert_eq!(first, made);
        let (second, hit) = Embeddings::cached(dir.path(), &key, &data, || {
            Err(Error::Config("must come from the cache".into()))
        })
        .unwrap();
        assert!(hit);
        assert_eq!(second, made);
        assert_eq!(second.row(2), &[3.0, 4.0]);
        assert_eq!(second.subset(&[2, 0]).values, vec![3.0, 4.0, 1.0, -2.0]);
        // Another sequence length is another file; a corrupt file is recomputed.
        let other = CacheKey {
            max_len: 32,
            ..key.clone()
        };
        assert_ne!(other.path(dir.path()), key.path(dir.path()));
        fs::write(key.path(dir.path()), b"{\"format\":1}\n").unwrap();
        let (_, hit) = Embeddings::cached(dir.path(), &key, &data, || Ok(made.clone())).unwrap();
        assert!(!hit);
    }

    /// Known answer: each class's mean over the chosen rows only; a class none of them holds
    /// is named in the error.
    #[test]
    fn class_means_average_the_chosen_rows() {
        let e = Embeddings {
            dim: 2,
            values: vec![1.0, -2.0, 0.5, 0.25, 3.0, 4.0, 9.0, 9.0],
            labels: vec![0, 1, 0, 1],
            label_names: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            e.class_means(&[0, 1, 2]).unwrap(),
            [vec![2.0, 1.0], vec![0.5, 0.25]]
        );
        let err = e.class_means(&[0, 2]).unwrap_err().to_string();
        assert!(
            err.contains("no example of class \"b\" among the 2 rows"),
            "{err}"
        );
    }
}
