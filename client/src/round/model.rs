//! The consortium's model package and a member's local model.
//!
//! A **model package** is the folder every member receives before the first round: the frozen
//! base (its SHA-256 is the consortium's `base_model_sha256`), the initial trainable tensors
//! round 1 starts from (`initial.safetensors`, the consortium's `initial_model_sha256`) and the
//! class names in order (`package.json`). `bcfl model init` writes one ([`ModelPackage::create`]),
//! from a BERT directory (all-MiniLM-L6-v2 by default) or, with `--tiny`
//! ([`ModelPackage::create_tiny`]), from a small random BERT whose word-level vocabulary is
//! built from a data file (for tests), or, with `--model smollm2`
//! ([`ModelPackage::create_decoder`]), from a Llama-architecture GGUF file with the
//! consortium's LoRA and training recipe ([`DecoderRecipe`], the package's `decoder` field):
//! its members then fine-tune the decoder on PubMedQA questions
//! ([`DecoderMember`](super::decoder::DecoderMember)). A node checks both hashes against the
//! chain before it trains.
//!
//! [`Trainer`] is what the member role asks of a model: fine-tune from a parent, score a global
//! model. [`LocalModel`] implements it for BERT + LoRA: a [`SharedModel`] (the classifier, its
//! tokenizer, a frozen-prefix cache when adapters sit only on the top layers) with a member's
//! private shard and optional held-out file. A node has its own `SharedModel`; the members of a
//! simulation share one and train in turn.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tch::Device;

use super::decoder::DecoderSchedule;
use super::{Error, Result};
use crate::llm::finetune::FinetuneConfig;
use crate::llm::pubmedqa::Answer;
use crate::llm::LanguageModel;
use crate::train::attack::embed::Embeddings;
use crate::train::attack::head::{reference_directions, ReferenceDirections, WEIGHT};
use crate::train::bert::{BertClassifier, BertConfig};
use crate::train::checkpoint::{ModelDir, WEIGHTS};
use crate::train::data::{Columns, Dataset};
use crate::train::lora::LoraConfig;
use crate::train::prefix::{Inputs, PrefixCache};
use crate::train::tensors::StoreTensors as _;
use crate::train::tokenize::TextEncoder;
use crate::train::trainer::{evaluate_on, train_on, Evaluation, TrainConfig};
use bcfl_fed::digest::file_sha256;
use bcfl_fed::update::{Encoding, Update};

/// Vocabulary size of a `--tiny` package's word-level tokenizer.
pub const TINY_VOCAB: usize = 2000;

/// The package description file.
pub const PACKAGE_FILE: &str = "package.json";

/// The initial trainable tensors' file in a package.
pub const INITIAL_FILE: &str = "initial.safetensors";

/// `package.json`: what a member needs to know about the consortium's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPackage {
    /// The base model directory (config.json, model.safetensors, tokenizer.json), absolute or
    /// relative to the package folder.
    pub base_dir: PathBuf,
    /// SHA-256 of the base weights.
    pub base_sha256: String,
    /// SHA-256 of `initial.safetensors`.
    pub initial_sha256: String,
    /// Class names, in label order.
    pub labels: Vec<String>,
    /// Longest token sequence.
    pub max_len: usize,
    /// What the model is, for reports.
    pub description: String,
    /// A decoder's recipe: the base is then a GGUF file (`base_dir` names it) and the
    /// trainable tensors are LoRA adapters; absent for BERT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder: Option<DecoderRecipe>,
    /// The package folder (not stored; set when read).
    #[serde(skip)]
    pub dir: PathBuf,
}

impl ModelPackage {
    /// Reads `DIR/package.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(PACKAGE_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::file("reading the model package", &path, e))?;
        let mut package: Self =
            serde_json::from_str(&text).map_err(|source| Error::NotAPackage {
                path: path.clone(),
                source,
            })?;
        package.dir = dir.to_path_buf();
        Ok(package)
    }

    /// The base model: a BERT directory, or a decoder's GGUF file.
    pub fn base_dir(&self) -> PathBuf {
        self.dir.join(&self.base_dir)
    }

    /// The initial trainable tensors' file.
    pub fn initial_path(&self) -> PathBuf {
        self.dir.join(INITIAL_FILE)
    }

    /// Labelled examples in the package's classes from `path` (a member's shard, a held-out or
    /// root set): CSV or JSON lines with `text` and `label` columns, or the corpus's own file.
    pub fn load_examples(&self, path: &Path) -> Result<Dataset> {
        let columns = Columns {
            text: "text".into(),
            label: "label".into(),
        };
        Dataset::load(path, &columns, None, Some(&self.labels))
            .map_err(|e| Error::file("loading", path, e))
    }

    /// The mislabelled-change method's reference for this package's BERT
    /// ([`bcfl_fed::reference`]), in the layout members commit: in the classification head's
    /// weight, the directions `kind` takes from `root`
    /// ([`reference_directions`]), each
    /// example's feature being what the head reads (the mean-pooled encoder output) under the
    /// initial model, whose adapters start at zero, so the base encoder's; zeros in every other
    /// tensor. `root` is a labelled set the consortium agrees on, with every class of the
    /// package.
    pub fn head_reference(&self, root: &Dataset, kind: ReferenceDirections) -> Result<Update> {
        if self.decoder.is_some() {
            return Err(Error::Config(
                "a decoder package answers in tokens: it has no classification head to take a \
                 reference for"
                    .into(),
            ));
        }
        if root.label_names != self.labels {
            return Err(Error::Config(format!(
                "the root set's classes {:?} are not the package's {:?}",
                root.label_names, self.labels
            )));
        }
        let (dir, model) = self.classifier(&self.base_sha256)?;
        let path = self.initial_path();
        let bytes = std::fs::read(&path).map_err(|e| Error::file("reading", &path, e))?;
        let initial = Update::from_bytes(&bytes)?;
        initial.apply_to(model.trainable())?;
        let features = Embeddings::compute(&model, &dir.encoder(self.max_len)?, root, 32)?;
        let all: Vec<usize> = (0..features.len()).collect();
        let rows = reference_directions(&features, &all, kind)?;
        Ok(bcfl_fed::reference::head_reference(
            &initial, WEIGHT, &rows,
        )?)
    }

    /// The package's BERT base, refused unless its SHA-256 is `base_sha256` (the value on
    /// chain), and a classifier of its classes on it. Its fresh adapters and head are replaced
    /// before use: their draws must not shift a seeded computation in the same process (`fl
    /// simulate`'s members), so they come from a generator of their own.
    fn classifier(&self, base_sha256: &str) -> Result<(ModelDir, BertClassifier)> {
        let dir =
            ModelDir::open(self.base_dir(), Some(base_sha256)).map_err(|e| Error::BaseModel {
                dir: self.base_dir(),
                expected: base_sha256.to_owned(),
                source: Box::new(e),
            })?;
        let model = {
            let _generator = crate::train::generator();
            dir.classifier(
                self.labels.len() as i64,
                &LoraConfig::default(),
                Device::Cpu,
            )?
        };
        Ok((dir, model))
    }

    /// Writes a package into `out` from `base` (a BERT directory) with fresh adapters and head
    /// drawn from `seed`.
    pub fn create(
        out: &Path,
        base: &Path,
        labels: Vec<String>,
        max_len: usize,
        seed: u64,
    ) -> Result<Self> {
        let dir = ModelDir::open(base, None)
            .map_err(|e| Error::file("opening the model directory", base, e))?;
        let model = {
            let _generator = crate::train::seeded(seed);
            dir.classifier(labels.len() as i64, &LoraConfig::default(), Device::Cpu)?
        };
        dir.encoder(max_len)?;
        let description = format!(
            "{} (LoRA rank {}, {} trainable parameters)",
            base.display(),
            model.lora().rank,
            model.trainable_parameters()
        );
        let base_dir = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
        Self::finish(
            out,
            base_dir,
            dir.sha256().to_owned(),
            &Update::from_store(model.trainable())?,
            labels,
            max_len,
            description,
            None,
        )
    }

    /// Writes a package with a tiny random two-layer BERT (hidden size 32, no dropout) whose
    /// word-level vocabulary comes from `texts`, into `out` (base files included).
    pub fn create_tiny(
        out: &Path,
        texts: &[&str],
        labels: Vec<String>,
        max_len: usize,
        seed: u64,
    ) -> Result<Self> {
        let encoder = TextEncoder::from_corpus(texts.iter().copied(), TINY_VOCAB, max_len)?;
        let config = BertConfig {
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            max_position_embeddings: (max_len as i64).max(64),
            ..BertConfig::tiny(encoder.vocab_size() as i64)
        };
        let model = {
            let _generator = crate::train::seeded(seed);
            let mut model = BertClassifier::new(
                config.clone(),
                LoraConfig::default(),
                labels.len() as i64,
                Device::Cpu,
            )?;
            model.randomize_base();
            model
        };
        std::fs::create_dir_all(out).map_err(|e| Error::file("creating", out, e))?;
        std::fs::write(out.join("config.json"), serde_json::to_string(&config)?)?;
        let weights = out.join(WEIGHTS);
        model
            .base()
            .save(&weights)
            .map_err(crate::train::Error::from)?;
        encoder.save(&out.join("tokenizer.json"))?;
        let description = format!(
            "tiny random BERT (2 layers, hidden 32, {} trainable parameters)",
            model.trainable_parameters()
        );
        let sha = file_sha256(&weights)
            .map_err(|e| Error::file("hashing", &weights, e))?
            .sha256;
        Self::finish(
            out,
            PathBuf::from("."),
            sha,
            &Update::from_store(model.trainable())?,
            labels,
            max_len,
            description,
            None,
        )
    }

    /// Writes a package into `out` for the decoder in `gguf` (a GGUF file or a Hugging Face
    /// checkpoint directory, [`crate::llm::model_sha256`] its hash), with fresh
    /// adapters of `recipe.lora` drawn from `seed` (the answers yes, no, maybe as labels).
    pub fn create_decoder(
        out: &Path,
        gguf: &Path,
        recipe: DecoderRecipe,
        seed: u64,
    ) -> Result<Self> {
        let (mut model, _) = LanguageModel::open(gguf, Device::Cpu)?.into_parts();
        {
            let _generator = crate::train::seeded(seed);
            model.attach_lora(recipe.lora.clone())?;
        }
        let adapters = model.adapters().expect("just attached");
        let initial = Update::from_store(adapters.store())?;
        let lora = &recipe.lora;
        let description = format!(
            "{} (LoRA rank {} on {} of layers {}..{}, {} trainable parameters)",
            gguf.file_name().unwrap_or_default().to_string_lossy(),
            lora.rank,
            lora.targets.join(", "),
            lora.from_layer,
            model.config().block_count,
            adapters.parameters()
        );
        let sha = crate::llm::model_sha256(gguf)?;
        let base = std::fs::canonicalize(gguf).unwrap_or_else(|_| gguf.to_path_buf());
        let labels = Answer::ALL.iter().map(|a| a.to_string()).collect();
        let max_len = recipe.local.max_prompt_tokens;
        Self::finish(
            out,
            base,
            sha,
            &initial,
            labels,
            max_len,
            description,
            Some(recipe),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        out: &Path,
        base_dir: PathBuf,
        base_sha256: String,
        initial: &Update,
        labels: Vec<String>,
        max_len: usize,
        description: String,
        decoder: Option<DecoderRecipe>,
    ) -> Result<Self> {
        std::fs::create_dir_all(out).map_err(|e| Error::file("creating", out, e))?;
        let initial = initial.to_bytes(Encoding::F32);
        let initial_path = out.join(INITIAL_FILE);
        std::fs::write(&initial_path, &initial)
            .map_err(|e| Error::file("writing", &initial_path, e))?;
        let package = Self {
            base_dir,
            base_sha256,
            initial_sha256: file_sha256(&initial_path)
                .map_err(|e| Error::file("hashing", &initial_path, e))?
                .sha256,
            labels,
            max_len,
            description,
            decoder,
            dir: out.to_path_buf(),
        };
        std::fs::write(
            out.join(PACKAGE_FILE),
            serde_json::to_string_pretty(&package)?,
        )?;
        Ok(package)
    }
}

/// How a consortium fine-tunes a decoder: the adapters, a member's local training and the
/// learning rate across rounds (the same for every member).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecoderRecipe {
    /// The adapters.
    pub lora: LoraConfig,
    /// Local training in a round.
    pub local: FinetuneConfig,
    /// The learning rate across rounds.
    pub schedule: DecoderSchedule,
}

/// One local training run's result.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The member's trainable tensors after training.
    pub update: Update,
    /// The last epoch's mean loss.
    pub loss: f64,
    /// Training examples.
    pub samples: u64,
}

/// What a member does with a model: train from a parent, score a global model. The member
/// role drives it; [`LocalModel`] is the BERT + LoRA implementation,
/// [`DecoderMember`](super::decoder::DecoderMember) the Llama decoder's on PubMedQA.
pub trait Trainer: Send + Sync + 'static {
    /// Fine-tunes from `parent` (the round's verified global tensors) for `round` (from 1; a
    /// schedule across rounds may use it) with `seed`.
    fn train(&self, parent: &Update, round: u64, seed: u64) -> Result<Trained>;

    /// Scores `model` on the held-out set, when there is one. May run while [`Self::train`]
    /// runs on another thread.
    fn evaluate(&self, model: &Update) -> Result<Option<Evaluation>>;
}

/// A classifier, its tokenizer and, when adapters sit only on the top layers, the cache of its
/// frozen prefix: what members who share one process (a simulation) share.
pub struct SharedModel {
    model: BertClassifier,
    encoder: TextEncoder,
    cache: Option<PrefixCache>,
}

impl SharedModel {
    /// `model` fed by `encoder`, or by `cache` when given.
    pub fn new(model: BertClassifier, encoder: TextEncoder, cache: Option<PrefixCache>) -> Self {
        Self {
            model,
            encoder,
            cache,
        }
    }

    /// A shareable handle.
    pub fn shared(self) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(self))
    }

    fn inputs(&self) -> Inputs<'_> {
        match &self.cache {
            Some(cache) => Inputs::Cached(cache),
            None => Inputs::Tokens(&self.encoder),
        }
    }
}

/// A member's model and private data.
pub struct LocalModel {
    shared: Arc<Mutex<SharedModel>>,
    /// The copy scoring runs on (the training copy, unless another was given).
    scoring: Arc<Mutex<SharedModel>>,
    shard: Dataset,
    test: Option<Dataset>,
    config: TrainConfig,
}

impl LocalModel {
    /// Loads the package's base (refused unless its SHA-256 is `base_sha256`, the value on
    /// chain) with the member's shard and optional held-out set.
    pub fn load(
        package: &ModelPackage,
        base_sha256: &str,
        shard: Dataset,
        test: Option<Dataset>,
        config: TrainConfig,
    ) -> Result<Self> {
        // Fresh adapters and head, replaced by the global model before any training.
        let (dir, model) = package.classifier(base_sha256)?;
        let encoder = dir.encoder(package.max_len)?;
        Self::new(
            SharedModel::new(model, encoder, None).shared(),
            shard,
            test,
            config,
        )
    }

    /// A member training `shared` (perhaps shared with other members of one process) on
    /// `shard`.
    pub fn new(
        shared: Arc<Mutex<SharedModel>>,
        shard: Dataset,
        test: Option<Dataset>,
        config: TrainConfig,
    ) -> Result<Self> {
        if shard.is_empty() {
            return Err(Error::Config("the training data is empty".into()));
        }
        Ok(Self {
            scoring: shared.clone(),
            shared,
            shard,
            test,
            config,
        })
    }

    /// Training examples.
    pub fn samples(&self) -> u64 {
        self.shard.len() as u64
    }

    fn lock(model: &Mutex<SharedModel>) -> Result<std::sync::MutexGuard<'_, SharedModel>> {
        model.lock().map_err(|_| Error::Poisoned)
    }
}

impl Trainer for LocalModel {
    fn train(&self, parent: &Update, _round: u64, seed: u64) -> Result<Trained> {
        let shared = Self::lock(&self.shared)?;
        parent.apply_to(shared.model.trainable())?;
        let config = TrainConfig {
            seed,
            ..self.config.clone()
        };
        let history = train_on(
            &shared.model,
            shared.inputs(),
            &self.shard,
            &config,
            false,
            |_| Ok(()),
        )?;
        Ok(Trained {
            update: Update::from_store(shared.model.trainable())?,
            loss: history.last().map_or(0.0, |h| h.loss),
            samples: self.samples(),
        })
    }

    fn evaluate(&self, model: &Update) -> Result<Option<Evaluation>> {
        let Some(test) = &self.test else {
            return Ok(None);
        };
        let shared = Self::lock(&self.scoring)?;
        model.apply_to(shared.model.trainable())?;
        Ok(Some(evaluate_on(&shared.model, shared.inputs(), test, 64)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::data::Example;

    fn root(labels: &[&str], texts: &[(&str, usize)]) -> Dataset {
        Dataset {
            examples: texts
                .iter()
                .map(|(text, label)| Example {
                    text: (*text).into(),
                    label: *label,
                })
                .collect(),
            label_names: labels.iter().map(|l| (*l).to_string()).collect(),
        }
    }

    /// A tiny package's reference, of either kind: the initial model's tensors, zero but in the
    /// head's weight, whose rows sum to 0; its sampled steps mark the adapters' positions as
    /// outside it; the two kinds differ. A root set without some class, or with other
    /// classes, is refused.
    #[test]
    fn head_reference_of_a_tiny_package() {
        let texts = [
            ("fever cough lungs", 0),
            ("cough lungs breath", 0),
            ("heart beat pressure", 1),
            ("pressure heart vessel", 1),
            ("bone fracture knee", 2),
            ("knee bone joint", 2),
        ];
        let labels = ["lung", "heart", "bone"];
        let dir = tempfile::tempdir().unwrap();
        let words: Vec<&str> = texts.iter().map(|(t, _)| *t).collect();
        let names = labels.iter().map(|l| (*l).to_string()).collect();
        ModelPackage::create_tiny(dir.path(), &words, names, 16, 7).unwrap();
        let package = ModelPackage::read(dir.path()).unwrap();
        let initial = Update::from_bytes(&std::fs::read(package.initial_path()).unwrap()).unwrap();
        let all = root(&labels, &texts);
        let means = package
            .head_reference(&all, ReferenceDirections::ClassMeans)
            .unwrap();
        let reference = package
            .head_reference(&all, ReferenceDirections::Classifier)
            .unwrap();
        assert_ne!(reference.tensors[WEIGHT], means.tensors[WEIGHT]);
        for reference in [&means, &reference] {
            assert_eq!(reference.layout(), initial.layout());
            for (name, (shape, values)) in &reference.tensors {
                if name == WEIGHT {
                    assert_eq!(shape[0], 3);
                    for j in 0..shape[1] {
                        let column: f32 = (0..3).map(|c| values[c * shape[1] + j]).sum();
                        assert!(column.abs() < 1e-5, "{column}");
                    }
                    assert!(values.iter().any(|&v| v != 0.0));
                } else {
                    assert!(values.iter().all(|&v| v == 0.0), "{name}");
                }
            }
        }
        let steps = bcfl_fed::reference::reference_steps(
            &reference,
            512,
            bcfl_fed::sketch::CoordinateScope::EVERY_TENSOR,
        )
        .unwrap();
        let outside = steps
            .iter()
            .filter(|&&b| b == bcfl_processor::anomaly::features::OUTSIDE_REFERENCE)
            .count();
        assert!(outside > 0 && bcfl_fed::reference::covered(&steps) > 0);
        let err = |r: Result<Update>| r.unwrap_err().to_string();
        let two = root(&labels, &texts[..4]);
        let other = root(&["a", "b", "c"], &texts);
        for kind in [
            ReferenceDirections::ClassMeans,
            ReferenceDirections::Classifier,
        ] {
            let found = err(package.head_reference(&two, kind));
            assert!(found.contains("no example of class \"bone\""), "{found}");
            assert!(err(package.head_reference(&other, kind)).contains("are not the package's"));
        }
    }
}
