//! Frozen-prefix caching: when adapters sit only on layers `K..L` ([`LoraConfig::from_layer`]
//! `= K > 0`), the hidden states entering layer `K` depend on no trainable tensor, so they are
//! computed once per text and looked up afterwards. Training then runs only layers `K..L` and
//! the head, forward and backward.
//!
//! The cache is exact, not an approximation: [`BertClassifier::prefix_t`] runs the frozen prefix
//! in evaluation mode in every case (no dropout below layer `K`, also while training; see
//! [`crate::train::bert`]), which is what the cache stores. Entries are keyed by the SHA-256 of
//! the text, so shards, validation and test sets cut from one corpus share one cache. Padding
//! is removed on the way in (each entry is `[tokens, hidden]`) and added back, as zeros, per
//! batch: the attention mask hides those positions.
//!
//! A cache can be saved as safetensors (one tensor per text, named by its digest) under a name
//! derived from everything the states depend on ([`CacheKey`]): base weights, tokenizer, `K`,
//! sequence length and the set of texts. `bcfl train` and `bcfl fl simulate` keep it in
//! `$BCFL_HOME/cache` when asked to (`--prefix-cache`).
//!
//! [`LoraConfig::from_layer`]: crate::train::lora::LoraConfig::from_layer
//!
//! ```no_run
//! use bcfl_client::train::{checkpoint::ModelDir, lora::LoraConfig, prefix::{Inputs, PrefixCache}};
//!
//! # fn main() -> Result<(), bcfl_client::train::Error> {
//! let dir = ModelDir::open("model/", None)?;
//! let lora = LoraConfig { from_layer: 4, ..LoraConfig::default() };
//! let model = dir.classifier(5, &lora, tch::Device::Cpu)?;
//! let encoder = dir.encoder(128)?;
//! let texts = ["a first abstract", "a second abstract"];
//! let cache = PrefixCache::build(&model, &encoder, texts, 64)?;
//! let logits = Inputs::Cached(&cache).logits(&model, &texts, false)?;
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use super::bert::BertClassifier;
use super::checkpoint::ModelDir;
use super::tokenize::TextEncoder;
use super::{Error, Result};
use bcfl_fed::digest::{file_sha256, Sha256Stream};

type TextDigest = [u8; 32];

fn digest(text: &str) -> TextDigest {
    Sha256::digest(text.as_bytes()).into()
}

/// What the model is fed: token ids run through the whole encoder, or cached prefix states run
/// through the adapted layers only.
#[derive(Clone, Copy, Debug)]
pub enum Inputs<'a> {
    /// Tokenize every batch and run the whole model.
    Tokens(&'a TextEncoder),
    /// Read the frozen prefix's output from a cache and run the layers above it.
    Cached(&'a PrefixCache),
}

impl Inputs<'_> {
    /// Class logits `[batch, num_labels]` of `texts`.
    pub fn logits(&self, model: &BertClassifier, texts: &[&str], train: bool) -> Result<Tensor> {
        match self {
            Self::Tokens(encoder) => {
                let batch = encoder.encode(texts, model.device())?;
                Ok(model.forward_t(&batch.ids, &batch.mask, train))
            }
            Self::Cached(cache) => {
                cache.check(model)?;
                let (hidden, mask) = cache.batch(texts, model.device())?;
                Ok(model.forward_from_prefix_t(&hidden, &mask, train))
            }
        }
    }
}

/// Everything cached prefix states depend on; its [`CacheKey::file_name`] names a saved cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey {
    /// SHA-256 of the base weights.
    pub model_sha256: String,
    /// SHA-256 of the tokenizer file.
    pub tokenizer_sha256: String,
    /// Frozen layers `K`.
    pub frozen_layers: usize,
    /// Truncation length.
    pub max_len: usize,
    /// SHA-256 over the sorted, distinct text digests.
    pub data_sha256: String,
}

impl CacheKey {
    /// The key of `texts` (any order, duplicates allowed) under the other settings.
    pub fn new<'t>(
        model_sha256: &str,
        tokenizer_sha256: &str,
        frozen_layers: usize,
        max_len: usize,
        texts: impl IntoIterator<Item = &'t str>,
    ) -> Self {
        let distinct: BTreeSet<TextDigest> = texts.into_iter().map(digest).collect();
        let mut stream = Sha256Stream::new();
        for d in &distinct {
            stream.update(d);
        }
        Self {
            model_sha256: model_sha256.to_lowercase(),
            tokenizer_sha256: tokenizer_sha256.to_lowercase(),
            frozen_layers,
            max_len,
            data_sha256: stream.finish().sha256,
        }
    }

    /// `prefix-<digest of the key>.safetensors`.
    pub fn file_name(&self) -> String {
        let mut stream = Sha256Stream::new();
        for part in [
            self.model_sha256.as_str(),
            self.tokenizer_sha256.as_str(),
            &self.frozen_layers.to_string(),
            &self.max_len.to_string(),
            self.data_sha256.as_str(),
        ] {
            stream.update(part.as_bytes());
            stream.update(&[0]);
        }
        format!("prefix-{}.safetensors", &stream.finish().sha256[..32])
    }
}

/// Hidden states entering the first adapted layer, one `[tokens, hidden]` tensor per text.
#[derive(Debug)]
pub struct PrefixCache {
    frozen_layers: usize,
    hidden_size: i64,
    states: HashMap<TextDigest, Tensor>,
}

impl PrefixCache {
    /// An empty cache for `model`'s frozen prefix.
    pub fn new(model: &BertClassifier) -> Self {
        Self {
            frozen_layers: model.frozen_layers(),
            hidden_size: model.config().hidden_size,
            states: HashMap::new(),
        }
    }

    /// The prefix states of `texts`, computed in batches of `batch_size`.
    pub fn build<'t>(
        model: &BertClassifier,
        encoder: &TextEncoder,
        texts: impl IntoIterator<Item = &'t str>,
        batch_size: usize,
    ) -> Result<Self> {
        let mut cache = Self::new(model);
        cache.extend(model, encoder, texts, batch_size)?;
        Ok(cache)
    }

    /// Computes the states of the `texts` not cached yet. Texts are batched by length so that
    /// little is spent on padding.
    pub fn extend<'t>(
        &mut self,
        model: &BertClassifier,
        encoder: &TextEncoder,
        texts: impl IntoIterator<Item = &'t str>,
        batch_size: usize,
    ) -> Result<()> {
        self.check(model)?;
        let mut seen = BTreeSet::new();
        let mut missing: Vec<&str> = texts
            .into_iter()
            .filter(|t| {
                let d = digest(t);
                !self.states.contains_key(&d) && seen.insert(d)
            })
            .collect();
        missing.sort_by_key(|t| (t.len(), *t));
        let started = std::time::Instant::now();
        tch::no_grad(|| -> Result<()> {
            for chunk in missing.chunks(batch_size.max(1)) {
                let batch = encoder.encode(chunk, model.device())?;
                let hidden = model.prefix_t(&batch.ids, &batch.mask, false);
                let lengths: Vec<i64> = Vec::try_from(
                    batch
                        .mask
                        .sum_dim_intlist(1, false, Kind::Int64)
                        .to_device(Device::Cpu),
                )?;
                for (row, (text, len)) in chunk.iter().zip(lengths).enumerate() {
                    let state = hidden.get(row as i64).narrow(0, 0, len).copy();
                    self.states.insert(digest(text), state);
                }
            }
            Ok(())
        })?;
        tracing::info!(
            texts = missing.len(),
            frozen_layers = self.frozen_layers,
            seconds = started.elapsed().as_secs_f64(),
            "prefix states computed"
        );
        Ok(())
    }

    /// Number of cached texts.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Frozen layers `K` whose output this cache holds.
    pub fn frozen_layers(&self) -> usize {
        self.frozen_layers
    }

    /// Bytes of cached states.
    pub fn bytes(&self) -> usize {
        self.states
            .values()
            .map(|t| t.numel() * t.kind().elt_size_in_bytes())
            .sum()
    }

    /// Refuses a model whose frozen prefix is not the one cached.
    fn check(&self, model: &BertClassifier) -> Result<()> {
        if model.frozen_layers() != self.frozen_layers
            || model.config().hidden_size != self.hidden_size
        {
            return Err(Error::Config(format!(
                "the cache holds the output of {} frozen layers of width {}, the model has {} of width {}",
                self.frozen_layers,
                self.hidden_size,
                model.frozen_layers(),
                model.config().hidden_size
            )));
        }
        Ok(())
    }

    /// The cached states of `texts`, zero-padded to the longest, and their `[batch, seq]`
    /// `Int64` mask, on `device`.
    pub fn batch(&self, texts: &[&str], device: Device) -> Result<(Tensor, Tensor)> {
        let states = texts
            .iter()
            .map(|t| {
                self.states.get(&digest(t)).ok_or_else(|| {
                    Error::Data(format!(
                        "no cached prefix states for the text {:?}",
                        t.chars().take(60).collect::<String>()
                    ))
                })
            })
            .collect::<Result<Vec<&Tensor>>>()?;
        let hidden = Tensor::pad_sequence(&states, true, 0.0, "right");
        let width = hidden.size()[1];
        let lengths: Vec<i64> = states.iter().map(|s| s.size()[0]).collect();
        let mask = Tensor::arange(width, (Kind::Int64, Device::Cpu))
            .unsqueeze(0)
            .lt_tensor(&Tensor::from_slice(&lengths).unsqueeze(1))
            .to_kind(Kind::Int64);
        Ok((hidden.to_device(device), mask.to_device(device)))
    }

    /// Writes the cache as safetensors (tensors named by the hex digest of their text).
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut named: Vec<(String, Tensor)> = self
            .states
            .iter()
            .map(|(d, t)| (hex::encode(d), t.to_device(Device::Cpu)))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        // Write then rename, so that an interrupted write never leaves a truncated cache.
        let partial = path.with_extension("partial");
        Tensor::write_safetensors(&named, &partial)?;
        std::fs::rename(&partial, path).map_err(|e| Error::io(path, e))
    }

    /// Reads a cache that [`Self::save`] wrote for `model`'s frozen prefix.
    pub fn load(path: &Path, model: &BertClassifier) -> Result<Self> {
        let mut cache = Self::new(model);
        for (name, tensor) in Tensor::read_safetensors(path)? {
            let bytes = hex::decode(&name)
                .ok()
                .and_then(|b| TextDigest::try_from(b).ok())
                .ok_or_else(|| {
                    Error::Data(format!(
                        "{}: tensor {name:?} is not a digest",
                        path.display()
                    ))
                })?;
            if tensor.dim() != 2 || tensor.size()[1] != cache.hidden_size {
                return Err(Error::Data(format!(
                    "{}: tensor {name} has shape {:?}, expected [tokens, {}]",
                    path.display(),
                    tensor.size(),
                    cache.hidden_size
                )));
            }
            cache.states.insert(bytes, tensor.to_device(model.device()));
        }
        Ok(cache)
    }

    /// The cache of `texts` for `model` loaded from `model_dir`: kept in `cache_dir` under its
    /// [`CacheKey`] (read back when present) with the path returned, or in memory only.
    pub fn for_corpus<'t>(
        model_dir: &ModelDir,
        model: &BertClassifier,
        encoder: &TextEncoder,
        texts: impl IntoIterator<Item = &'t str> + Clone,
        cache_dir: Option<&Path>,
    ) -> Result<(Self, Option<PathBuf>)> {
        const BATCH: usize = 64;
        let Some(cache_dir) = cache_dir else {
            return Ok((Self::build(model, encoder, texts, BATCH)?, None));
        };
        let tokenizer_path = model_dir.path().join("tokenizer.json");
        let tokenizer = file_sha256(&tokenizer_path)
            .map_err(|e| Error::io(&tokenizer_path, e))?
            .sha256;
        let key = CacheKey::new(
            model_dir.sha256(),
            &tokenizer,
            model.frozen_layers(),
            encoder.max_len(),
            texts.clone(),
        );
        let (cache, path) = Self::load_or_build(cache_dir, &key, model, encoder, texts, BATCH)?;
        Ok((cache, Some(path)))
    }

    /// The cache of `texts` kept in `dir` under `key`'s name: read when present, otherwise
    /// computed and saved there.
    pub fn load_or_build<'t>(
        dir: &Path,
        key: &CacheKey,
        model: &BertClassifier,
        encoder: &TextEncoder,
        texts: impl IntoIterator<Item = &'t str>,
        batch_size: usize,
    ) -> Result<(Self, PathBuf)> {
        let path = dir.join(key.file_name());
        if path.is_file() {
            let mut cache = Self::load(&path, model)?;
            // A complete file holds every text: this computes nothing unless it is stale.
            cache.extend(model, encoder, texts, batch_size)?;
            tracing::info!(path = %path.display(), texts = cache.len(), "prefix cache read");
            return Ok((cache, path));
        }
        let cache = Self::build(model, encoder, texts, batch_size)?;
        cache.save(&path)?;
        tracing::info!(path = %path.display(), bytes = cache.bytes(), "prefix cache saved");
        Ok((cache, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_names_the_set_of_texts_and_every_setting() {
        let key = |k, texts: &[&str]| CacheKey::new("AB", "cd", k, 128, texts.iter().copied());
        let base = key(4, &["x", "y"]);
        assert_eq!(base, key(4, &["y", "x", "x"]));
        assert_eq!(base.model_sha256, "ab");
        assert_ne!(base.file_name(), key(5, &["x", "y"]).file_name());
        assert_ne!(base.file_name(), key(4, &["x", "z"]).file_name());
        let longer = CacheKey {
            max_len: 64,
            ..base.clone()
        };
        assert_ne!(base.file_name(), longer.file_name());
        assert!(base.file_name().starts_with("prefix-"));
    }
}
