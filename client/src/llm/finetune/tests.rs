//! Fine-tuning on SmolLM2-135M-Instruct (`BCFL_LLM_GGUF`; skipped when absent) with a few
//! PubMedQA questions: the cached prefix trains exactly as the whole model does, and training
//! lowers the loss.

use std::path::Path;

use super::*;
use crate::llm::lora::LlamaLora;
use crate::llm::pubmedqa::{PubMedQa, DIR};
use crate::llm::{LanguageModel, GGUF_ENV};
use crate::train::lora::LoraConfig;
use crate::train::tensors::StoreTensors as _;
use bcfl_fed::update::Update;

fn smollm2() -> Option<LanguageModel> {
    match std::env::var_os(GGUF_ENV) {
        Some(p) if Path::new(&p).is_file() => Some(LanguageModel::open(p, Device::Cpu).unwrap()),
        _ => {
            eprintln!("skipped: {GGUF_ENV} names no file (source scripts/env.sh)");
            None
        }
    }
}

use tch::{Device, Tensor};

#[test]
fn the_cosine_schedule_runs_from_max_to_min() {
    assert_eq!(cosine_learning_rate(1, 10, 5e-5, 1e-6), 5e-5);
    assert!((cosine_learning_rate(10, 10, 5e-5, 1e-6) - 1e-6).abs() < 1e-18);
    let mid = cosine_learning_rate(3, 5, 5e-5, 1e-6);
    assert!((mid - (5e-5 + 1e-6) / 2.0).abs() < 1e-15);
    assert_eq!(cosine_learning_rate(1, 1, 5e-5, 1e-6), 5e-5);
}

#[test]
fn balanced_weights_make_each_present_answer_weigh_the_same() {
    use Answer::{Maybe, No, Yes};
    // 6 yes, 3 no, 1 maybe: each answer weighs 10/3 in total.
    let answers = [[Yes; 6].as_slice(), &[No; 3], &[Maybe]].concat();
    let w = balanced_weights(&answers);
    for (answer, count) in [(Yes, 6.0), (No, 3.0), (Maybe, 1.0)] {
        assert!(
            (w[answer.index()] * count - 10.0 / 3.0).abs() < 1e-12,
            "{w:?}"
        );
    }
    let mean = answers.iter().map(|a| w[a.index()]).sum::<f64>() / answers.len() as f64;
    assert!((mean - 1.0).abs() < 1e-12);
    // An absent answer keeps weight 1; one answer alone is not reweighted.
    assert_eq!(balanced_weights(&[Yes, Yes, No, No]), [1.0, 1.0, 1.0]);
    assert_eq!(balanced_weights(&[No; 4]), [1.0, 1.0, 1.0]);
    assert_eq!(balanced_weights(&[]), [1.0, 1.0, 1.0]);
}

#[test]
fn the_cached_prefix_trains_exactly_as_the_whole_model_and_lowers_the_loss() {
    let Some(mut lm) = smollm2() else { return };
    let data = PubMedQa::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data")
            .join(DIR),
    )
    .unwrap();
    let questions: Vec<_> = data.train().into_iter().take(3).collect();
    let encoder = PromptEncoder::new(lm.tokenizer())
        .unwrap()
        .with_max_tokens(96);
    let answers = *encoder.answers();
    let mut set = QaSet::encode(&encoder, &questions).unwrap();
    assert!(set.tokens() <= 3 * 96);
    let lora = LoraConfig {
        dropout: 0.0,
        ..LlamaLora::for_top_layers(LlamaLora::flowertune(), lm.model().config(), 2)
    };
    let model = lm.model_mut();
    {
        let _g = crate::train::seeded(1);
        model.attach_lora(lora).unwrap();
    }
    let adapters = model.adapters().unwrap();
    let initial = Update::from_store(adapters.store()).unwrap();
    let config = FinetuneConfig {
        steps: 4,
        batch_size: 3,
        max_prompt_tokens: 96,
        ..FinetuneConfig::default()
    };
    let before = evaluate(model, &set, &answers).unwrap();
    let full = train(model, &set, &answers, &config, 1e-3, 7).unwrap();
    let after_full = Update::from_store(adapters.store()).unwrap();
    let after = evaluate(model, &set, &answers).unwrap();
    assert!(
        after.loss < before.loss,
        "{} -> {}",
        before.loss,
        after.loss
    );

    initial.apply_to(adapters.store()).unwrap();
    set.cache_prefix(model).unwrap();
    assert!(set.prefix_bytes() > 0);
    let cached = train(model, &set, &answers, &config, 1e-3, 7).unwrap();
    let after_cached = Update::from_store(adapters.store()).unwrap();
    assert!(
        (full.loss - cached.loss).abs() < 1e-5,
        "{full:?} {cached:?}"
    );
    let diff = after_full
        .tensors
        .values()
        .zip(after_cached.tensors.values())
        .flat_map(|((_, a), (_, b))| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
        .fold(0f32, f32::max);
    assert!(diff < 1e-5, "largest difference {diff}");
}

#[test]
fn a_saved_prefix_cache_reads_back_and_a_damaged_one_is_recomputed() {
    let Some(mut lm) = smollm2() else { return };
    let data = PubMedQa::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../data")
            .join(DIR),
    )
    .unwrap();
    let questions: Vec<_> = data.train().into_iter().take(2).collect();
    let encoder = PromptEncoder::new(lm.tokenizer())
        .unwrap()
        .with_max_tokens(96);
    let lora = LlamaLora::for_top_layers(LlamaLora::flowertune(), lm.model().config(), 1);
    {
        // attach_lora draws A from libtorch's process-global generator: hold it.
        let _generator = crate::train::seeded(2);
        lm.model_mut().attach_lora(lora).unwrap();
    }
    let model = lm.model();
    let dir = tempfile::tempdir().unwrap();
    let states = |set: &QaSet| -> Vec<Tensor> {
        let (layer, states) = set.prefix.as_ref().unwrap();
        assert_eq!(*layer, model.frozen_layers());
        states.iter().map(Tensor::shallow_clone).collect()
    };

    let mut first = QaSet::encode(&encoder, &questions).unwrap();
    first.cache_prefix_in(model, "sha", dir.path()).unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let mut second = QaSet::encode(&encoder, &questions).unwrap();
    second.cache_prefix_in(model, "sha", dir.path()).unwrap();
    for (a, b) in states(&first).iter().zip(states(&second)) {
        assert!(a.equal(&b));
    }
    // Another base model or other prompts name another file.
    let mut other = QaSet::encode(&encoder, &questions[..1]).unwrap();
    other.cache_prefix_in(model, "sha", dir.path()).unwrap();
    other.cache_prefix_in(model, "another", dir.path()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);

    // A damaged file is recomputed, and replaced.
    std::fs::write(&files[0], b"not safetensors").unwrap();
    let mut third = QaSet::encode(&encoder, &questions).unwrap();
    third.cache_prefix_in(model, "sha", dir.path()).unwrap();
    for (a, b) in states(&first).iter().zip(states(&third)) {
        assert!(a.equal(&b));
    }
    assert!(Tensor::read_safetensors(&files[0]).is_ok());
}
