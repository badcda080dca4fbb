//! The training engine end to end on a tiny randomly initialised BERT (2 layers, hidden 32):
//! learning, determinism, the model directory format, and the `bcfl train`, `bcfl eval` and
//! `bcfl fl simulate` commands. Runs in seconds on CPU without the real model.
#![cfg(feature = "train")]

use std::fs;
use std::path::Path;
use std::process::Command;

use bcfl_client::train::bert::{BertClassifier, BertConfig};
use bcfl_client::train::checkpoint::ModelDir;
use bcfl_client::train::data::{Dataset, Example};
use bcfl_client::train::lora::LoraConfig;
use bcfl_client::train::prefix::{CacheKey, Inputs, PrefixCache};
use bcfl_client::train::tensors::StoreTensors as _;
use bcfl_client::train::tokenize::TextEncoder;
use bcfl_client::train::trainer::{evaluate, evaluate_on, train, train_on, TrainConfig};
use bcfl_client::train::{seeded, Error};
use bcfl_fed::update::{Encoding, Update};
use tch::Device;

const CLASSES: [&[&str]; 3] = [
    &["tumor", "carcinoma", "oncology", "metastasis"],
    &["liver", "bowel", "gastric", "colon"],
    &["neuron", "brain", "seizure", "cortex"],
];
const FILLER: [&str; 6] = ["the", "patient", "study", "with", "and", "results"];

/// Texts of three classes told apart by their topic words, among shared filler words.
fn corpus(per_class: usize) -> Dataset {
    let mut examples = Vec::new();
    for i in 0..per_class {
        for (label, words) in CLASSES.iter().enumerate() {
            let text = format!(
                "{} {} {} {} {}",
                FILLER[i % FILLER.len()],
                words[i % words.len()],
                FILLER[(i + 2) % FILLER.len()],
                words[(i + 1) % words.len()],
                FILLER[(i + 4) % FILLER.len()],
            );
            examples.push(Example { text, label });
        }
    }
    Dataset {
        examples,
        label_names: vec!["neoplasms".into(), "digestive".into(), "nervous".into()],
    }
}

fn encoder() -> TextEncoder {
    let words: Vec<&str> = CLASSES
        .iter()
        .flat_map(|c| c.iter())
        .chain(FILLER.iter())
        .copied()
        .collect();
    TextEncoder::from_corpus(words, 100, 16).unwrap()
}

/// The tiny configuration without dropout, so that a few steps learn the corpus.
fn tiny_config(encoder: &TextEncoder) -> BertConfig {
    BertConfig {
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        ..BertConfig::tiny(encoder.vocab_size() as i64)
    }
}

fn tiny_model(encoder: &TextEncoder, seed: u64) -> BertClassifier {
    // One libtorch thread: the tests run in parallel on a small shared machine.
    tch::set_num_threads(1);
    let _generator = seeded(seed);
    let mut model =
        BertClassifier::new(tiny_config(encoder), LoraConfig::default(), 3, Device::Cpu).unwrap();
    model.randomize_base();
    model
}

/// The tiny model with dropout on and adapters on layer 1 only: layer 0 is a frozen prefix.
fn tiny_top_model(encoder: &TextEncoder, seed: u64) -> BertClassifier {
    tch::set_num_threads(1);
    let _generator = seeded(seed);
    let lora = LoraConfig {
        from_layer: 1,
        ..LoraConfig::default()
    };
    let config = BertConfig::tiny(encoder.vocab_size() as i64);
    let mut model = BertClassifier::new(config, lora, 3, Device::Cpu).unwrap();
    model.randomize_base();
    model
}

fn largest_gap(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
    f64::try_from((a - b).abs().max()).unwrap()
}

#[test]
fn cached_frozen_prefix_is_exact() {
    let data = corpus(12);
    let encoder = encoder();
    let texts: Vec<&str> = data.examples.iter().map(|e| e.text.as_str()).collect();
    let model = tiny_top_model(&encoder, 11);
    assert_eq!(model.frozen_layers(), 1);
    // Only layer 1 carries adapters: the update has no layer-0 tensor.
    let update = Update::from_store(model.trainable()).unwrap();
    assert_eq!(
        update.tensors.len(),
        2 * 2 + 2,
        "{:?}",
        update.tensors.keys()
    );
    assert!(update.tensors.keys().all(|n| !n.contains("layer.0.")));
    // Give the adapters non-zero B so that the adapted layer differs from its base.
    tch::no_grad(|| {
        for (name, mut var) in model.trainable().variables() {
            if name.ends_with("lora_b") {
                var.copy_(&(tch::Tensor::randn(var.size(), (tch::Kind::Float, Device::Cpu)) * 0.1));
            }
        }
    });

    // Eval-mode logits: cached states (batched by length, padding stripped and re-added in
    // other batches) against the whole model on tokens.
    let cache = PrefixCache::build(&model, &encoder, texts.iter().copied(), 5).unwrap();
    assert_eq!(cache.len(), texts.len());
    let tokens = Inputs::Tokens(&encoder);
    let cached = Inputs::Cached(&cache);
    let (direct, from_cache) = tch::no_grad(|| {
        (
            tokens.logits(&model, &texts, false).unwrap(),
            cached.logits(&model, &texts, false).unwrap(),
        )
    });
    let gap = largest_gap(&direct, &from_cache);
    eprintln!("largest logit gap, cached vs uncached: {gap:e}");
    assert!(gap <= 1e-5, "{gap}");
    assert!(f64::try_from(direct.abs().max()).unwrap() > 1e-3);

    // Saved and read back, the cache gives the same logits.
    let dir = tempfile::tempdir().unwrap();
    let key = CacheKey::new("m", "t", 1, 16, texts.iter().copied());
    let (_, path) =
        PrefixCache::load_or_build(dir.path(), &key, &model, &encoder, texts.iter().copied(), 7)
            .unwrap();
    let (read, same_path) =
        PrefixCache::load_or_build(dir.path(), &key, &model, &encoder, texts.iter().copied(), 7)
            .unwrap();
    assert_eq!(path, same_path);
    let reread = tch::no_grad(|| Inputs::Cached(&read).logits(&model, &texts, false).unwrap());
    assert!(largest_gap(&reread, &from_cache) <= 1e-6);

    // A text outside the cache, or a model with another prefix, is refused.
    assert!(cached.logits(&model, &["an unseen text"], false).is_err());
    let all_layers = tiny_model(&encoder, 11);
    assert!(cached.logits(&all_layers, &texts, false).is_err());

    // Training (dropout on above the prefix) takes the same steps either way.
    let fresh = tiny_top_model(&encoder, 12);
    let cache = PrefixCache::build(&fresh, &encoder, texts.iter().copied(), 16).unwrap();
    let cached = Inputs::Cached(&cache);
    let run = |inputs: Inputs<'_>| {
        let model = tiny_top_model(&encoder, 12);
        let history = train_on(&model, inputs, &data, &config(3), false, |_| Ok(())).unwrap();
        let scores = evaluate_on(&model, inputs, &data, 16).unwrap();
        (model, history, scores)
    };
    let (uncached_model, uncached_history, uncached_scores) = run(tokens);
    let (cached_model, cached_history, cached_scores) = run(cached);
    for (u, c) in uncached_history.iter().zip(&cached_history) {
        assert!((u.loss - c.loss).abs() < 1e-4, "{u:?} vs {c:?}");
    }
    assert_eq!(uncached_scores.scores, cached_scores.scores);
    assert!(cached_scores.scores.accuracy >= 0.9, "{cached_scores:?}");
    let trained = uncached_model.trainable().variables();
    for (name, var) in cached_model.trainable().variables() {
        let gap = largest_gap(&var, &trained[&name]);
        assert!(gap < 1e-4, "{name}: {gap}");
    }
}

#[test]
fn the_first_adapted_layer_must_exist() {
    let encoder = encoder();
    let config = tiny_config(&encoder);
    let lora = |from_layer| LoraConfig {
        from_layer,
        ..LoraConfig::default()
    };
    // A fresh head and adapters come from libtorch's process-global generator: hold it.
    let _generator = seeded(3);
    assert!(BertClassifier::new(config.clone(), lora(3), 3, Device::Cpu).is_err());
    // From the last layer + 1: no adapter at all, only the head trains.
    let head_only = BertClassifier::new(config, lora(2), 3, Device::Cpu).unwrap();
    assert_eq!(head_only.trainable_parameters(), 32 * 3 + 3);
}

fn config(seed: u64) -> TrainConfig {
    TrainConfig {
        epochs: 6,
        batch_size: 8,
        learning_rate: 3e-2,
        seed,
        ..TrainConfig::default()
    }
}

/// Writes a model directory (config.json, model.safetensors, tokenizer.json) of the tiny BERT.
fn tiny_model_dir(dir: &Path) {
    let encoder = encoder();
    let model = tiny_model(&encoder, 1);
    let config = tiny_config(&encoder);
    fs::write(
        dir.join("config.json"),
        serde_json::to_string(&config).unwrap(),
    )
    .unwrap();
    model.base().save(dir.join("model.safetensors")).unwrap();
    encoder.save(&dir.join("tokenizer.json")).unwrap();
}

#[test]
fn tiny_bert_learns_and_training_is_deterministic() {
    let data = corpus(20);
    let encoder = encoder();
    let model = tiny_model(&encoder, 3);
    let before = evaluate(&model, &encoder, &data, 32).unwrap();
    let base_before = Update::from_store(model.base()).unwrap();
    let history = train(&model, &encoder, &data, &config(5), false, |_| Ok(())).unwrap();
    let after = evaluate(&model, &encoder, &data, 32).unwrap();
    eprintln!(
        "loss {:.3} -> {:.3}, accuracy {:.3} -> {:.3}",
        history[0].loss, history[5].loss, before.scores.accuracy, after.scores.accuracy
    );
    assert!(history[5].loss < 0.5 * history[0].loss, "{history:?}");
    assert!(after.scores.accuracy >= 0.9, "{after:?}");
    // The base weights are frozen.
    assert_eq!(Update::from_store(model.base()).unwrap(), base_before);

    // The same seeds give the same bytes; another seed does not.
    let update = |model_seed, train_seed| {
        let model = tiny_model(&encoder, model_seed);
        train(&model, &encoder, &data, &config(train_seed), false, |_| {
            Ok(())
        })
        .unwrap();
        Update::from_store(model.trainable())
            .unwrap()
            .to_bytes(Encoding::F32)
    };
    let first = update(3, 5);
    assert_eq!(
        first,
        Update::from_store(model.trainable())
            .unwrap()
            .to_bytes(Encoding::F32)
    );
    assert_eq!(first, update(3, 5));
    assert_ne!(first, update(3, 6));
}

#[test]
fn updates_carry_only_adapters_and_head_and_round_trip_into_a_model() {
    let encoder = encoder();
    let model = tiny_model(&encoder, 7);
    let update = Update::from_store(model.trainable()).unwrap();
    let names: Vec<&String> = update.tensors.keys().collect();
    assert_eq!(names.len(), 2 * 2 * 2 + 2, "{names:?}");
    assert!(names.contains(&&"encoder.layer.1.attention.self.value.lora_b".to_string()));
    assert!(names.contains(&&"classifier.weight".to_string()));
    let mut other = tiny_model(&encoder, 8);
    assert_ne!(Update::from_store(other.trainable()).unwrap(), update);
    Update::from_bytes(&update.to_bytes(Encoding::F32))
        .unwrap()
        .apply_to(other.trainable_mut())
        .unwrap();
    assert_eq!(Update::from_store(other.trainable()).unwrap(), update);
}

#[test]
fn model_dir_checks_the_weights_digest() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model_dir(dir.path());
    let opened = ModelDir::open(dir.path(), None).unwrap();
    assert_eq!(opened.verified_by(), None);
    let same = ModelDir::open(dir.path(), Some(opened.sha256())).unwrap();
    assert_eq!(same.verified_by(), Some("caller"));
    let wrong = "0".repeat(64);
    assert!(matches!(
        ModelDir::open(dir.path(), Some(&wrong)),
        Err(Error::Checksum { .. })
    ));
    // The loaded classifier has the saved base weights (its fresh head and adapters are drawn
    // from libtorch's process-global generator, so hold it).
    let model = {
        let _generator = seeded(2);
        opened
            .classifier(3, &LoraConfig::default(), Device::Cpu)
            .unwrap()
    };
    let expected = tiny_model(&encoder(), 1);
    assert_eq!(
        Update::from_store(model.base()).unwrap(),
        Update::from_store(expected.base()).unwrap()
    );
}

fn bcfl(args: &[&str]) -> serde_json::Value {
    // `bcfl train|eval|fl` run in bcfl-train.
    bcfl_testkit::Binary::BcflTrain.path();
    let out = Command::new(bcfl_testkit::Binary::Bcfl.path())
        .args(args)
        .env_remove("BCFL_DATA_DIR")
        .env_remove("BCFL_MODEL_DIR")
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bcfl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn cli_train_eval_and_simulate() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("base");
    fs::create_dir(&model_dir).unwrap();
    tiny_model_dir(&model_dir);
    let data = corpus(20);
    let csv = dir.path().join("data.csv");
    let mut text = String::from("label,text\n");
    for e in &data.examples {
        text.push_str(&format!("{},{}\n", data.label_names[e.label], e.text));
    }
    fs::write(&csv, text).unwrap();
    let saved = dir.path().join("trained");
    let (m, d, s) = (
        model_dir.to_str().unwrap(),
        csv.to_str().unwrap(),
        saved.to_str().unwrap(),
    );
    let common = [
        "--model-dir",
        m,
        "--data",
        d,
        "--max-len",
        "16",
        "--batch-size",
        "8",
        "--lr",
        "3e-2",
    ];

    let trained = bcfl(
        &[
            &["--json", "train"][..],
            &common,
            &["--epochs", "6", "--out", s],
        ]
        .concat(),
    );
    let epochs = trained["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 6);
    let final_test = &epochs[5]["test"];
    assert!(
        final_test["accuracy"].as_f64().unwrap() >= 0.8,
        "{final_test}"
    );
    assert_eq!(
        trained["labels"],
        serde_json::json!(["digestive", "neoplasms", "nervous"])
    );

    // Evaluating the saved model on the whole file: the digest is checked, the classes kept.
    let evaluated = bcfl(&["--json", "eval", "--model", s, "--data", d]);
    assert_eq!(evaluated["examples"], 60);
    let accuracy = evaluated["evaluation"]["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.8, "{evaluated}");
    let confusion = evaluated["evaluation"]["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 3);

    // The saved held-out split scores as the last epoch did; int8 adapters score close to it.
    let test_csv = saved.join("test.csv");
    let t = test_csv.to_str().unwrap();
    let held_out = bcfl(&["--json", "eval", "--model", s, "--data", t]);
    assert_eq!(held_out["evaluation"]["accuracy"], final_test["accuracy"]);
    let int8 = bcfl(&["--json", "eval", "--model", s, "--data", t, "--int8"]);
    assert_eq!(int8["int8"], true);
    let cost =
        final_test["accuracy"].as_f64().unwrap() - int8["evaluation"]["accuracy"].as_f64().unwrap();
    assert!(cost.abs() <= 0.2, "int8 changed accuracy by {cost}");

    // Adapters on the top layer only, the prefix cached on disk: the saved model records the
    // first adapted layer and `bcfl eval` (no cache) scores the test split as training did.
    let top = dir.path().join("top");
    let cache_dir = dir.path().join("cache");
    let (top_s, cache_s) = (top.to_str().unwrap(), cache_dir.to_str().unwrap());
    let top_args = [
        &["--json", "train"][..],
        &common,
        &["--epochs", "6", "--out", top_s, "--lora-from-layer", "1"],
        &["--prefix-cache", cache_s],
    ]
    .concat();
    let top_trained = bcfl(&top_args);
    assert_eq!(top_trained["frozen_layers"], 1);
    assert_eq!(fs::read_dir(&cache_dir).unwrap().count(), 1);
    let top_final = &top_trained["epochs"][5]["test"];
    let saved_top: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(top.join("bcfl-model.json")).unwrap()).unwrap();
    assert_eq!(saved_top["lora"]["from_layer"], 1);
    let top_t = top.join("test.csv");
    let top_eval = bcfl(&[
        "--json",
        "eval",
        "--model",
        top_s,
        "--data",
        top_t.to_str().unwrap(),
    ]);
    assert_eq!(top_eval["evaluation"]["accuracy"], top_final["accuracy"]);
    // A second run reads the cache file and trains to the same result.
    let again = bcfl(&top_args);
    for epoch in 0..6 {
        assert_eq!(
            again["epochs"][epoch]["test"],
            top_trained["epochs"][epoch]["test"]
        );
        assert_eq!(
            again["epochs"][epoch]["train"]["loss"],
            top_trained["epochs"][epoch]["train"]["loss"]
        );
    }

    // Through the round library: five members (Multi-Krum with f = 1 needs 2f + 3 = 5) over the
    // in-memory ledger, int8 blobs, 32-long sketches (the processor checks the length).
    let simulated = bcfl(
        &[
            &["--json", "fl", "simulate"][..],
            &common,
            &[
                "--clients",
                "5",
                "--rounds",
                "2",
                "--epochs",
                "4",
                "--min-shard",
                "5",
                "--lora-from-layer",
                "1",
            ],
            &[
                "--rule",
                "multi-krum",
                "--quantize",
                "--sketch-length",
                "32",
            ],
        ]
        .concat(),
    );
    assert_eq!(simulated["config"]["rule"]["k"], 4, "{simulated}");
    let rounds = simulated["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    for round in rounds {
        let members = round["members"].as_array().unwrap();
        assert_eq!(members.len(), 5);
        assert!(
            members
                .iter()
                .all(|m| m["committed"] == true && m["holds_global"] == true),
            "{round}"
        );
        assert!(round["aggregate_sha256"].is_string(), "{round}");
    }
    assert!(rounds[1]["accuracy"].as_f64().unwrap() > 0.5, "{simulated}");
}
