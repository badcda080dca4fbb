//! Checkpoint directories of a tiny random model (names, the query and key row order, shards,
//! floating-point types, configuration and file errors, the tokenizer's files) and the known
//! answers of SmolLM2-135M-Instruct exported from its GGUF file (`BCFL_LLM_GGUF`; skipped when
//! absent).

use std::collections::HashMap;
use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::*;
use crate::llm::model::tests::{random_weights, RandomWeights};
use crate::llm::model::{unpermute_rotary_rows, Llama, WeightStorage};
use crate::llm::pubmedqa::tests::byte_tokenizer;
use crate::llm::{LanguageModel, GGUF_ENV};

fn tiny_config() -> LlamaConfig {
    LlamaConfig::tiny(50)
}

fn logits(model: &Llama) -> Tensor {
    let ids = Tensor::from_slice(&[1i64, 7, 3, 9, 22]).unsqueeze(0);
    model.forward(&ids, None).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// `weights` (GGUF names and rows) under Hugging Face names, the query and key rows in
/// Hugging Face's order when `hf_rows`.
fn hf_tensors(
    config: &LlamaConfig,
    weights: &RandomWeights,
    hf_rows: bool,
) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> = weights
        .0
        .iter()
        .map(|(name, t)| {
            let heads = match name.rsplit('.').nth(1) {
                Some("attn_q") => Some(config.head_count),
                Some("attn_k") => Some(config.head_count_kv),
                _ => None,
            };
            let t = match heads.filter(|_| hf_rows) {
                Some(h) => unpermute_rotary_rows(t, h),
                None => t.shallow_clone(),
            };
            (hf_name(name).unwrap(), t.contiguous())
        })
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

fn write_config(dir: &Path, config: &HfConfig) {
    let text = serde_json::to_string(config).unwrap();
    std::fs::write(dir.join(CONFIG_FILE), text).unwrap();
}

/// A checkpoint directory of `named` tensors in one file, with `config`'s `config.json`.
fn checkpoint_dir(config: &LlamaConfig, named: &[(String, Tensor)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &HfConfig::from_llama(config, None));
    Tensor::write_safetensors(named, dir.path().join(WEIGHTS_FILE)).unwrap();
    dir
}

fn load(dir: &Path) -> Result<Llama> {
    let checkpoint = Checkpoint::open(dir)?;
    Llama::load(
        checkpoint.config().clone(),
        &checkpoint,
        Device::Cpu,
        WeightStorage::F32,
    )
}

#[test]
fn names_map_both_ways() {
    let known = [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
        (
            "blk.0.attn_norm.weight",
            "model.layers.0.input_layernorm.weight",
        ),
        (
            "blk.12.attn_q.weight",
            "model.layers.12.self_attn.q_proj.weight",
        ),
        (
            "blk.1.attn_k.weight",
            "model.layers.1.self_attn.k_proj.weight",
        ),
        (
            "blk.1.attn_v.weight",
            "model.layers.1.self_attn.v_proj.weight",
        ),
        (
            "blk.1.attn_output.weight",
            "model.layers.1.self_attn.o_proj.weight",
        ),
        (
            "blk.29.ffn_norm.weight",
            "model.layers.29.post_attention_layernorm.weight",
        ),
        (
            "blk.2.ffn_gate.weight",
            "model.layers.2.mlp.gate_proj.weight",
        ),
        ("blk.2.ffn_up.weight", "model.layers.2.mlp.up_proj.weight"),
        (
            "blk.2.ffn_down.weight",
            "model.layers.2.mlp.down_proj.weight",
        ),
    ];
    for (gguf, hf) in known {
        assert_eq!(hf_name(gguf).as_deref(), Some(hf), "{gguf}");
        assert_eq!(gguf_name(hf).as_deref(), Some(gguf), "{hf}");
    }
    // Every weight of a model has a name, and the names are distinct.
    let mut config = tiny_config();
    config.tied_embeddings = false;
    let mut weights = random_weights(&config);
    weights.0.insert(
        "output.weight".into(),
        Tensor::zeros([50, 32], (Kind::Float, Device::Cpu)),
    );
    let model = Llama::load(config, &weights, Device::Cpu, WeightStorage::F32).unwrap();
    let names: std::collections::HashSet<String> = model
        .named_weights()
        .iter()
        .map(|(n, _)| {
            let hf = hf_name(n).unwrap();
            assert_eq!(gguf_name(&hf).as_deref(), Some(n.as_str()));
            hf
        })
        .collect();
    assert_eq!(names.len(), 2 * 9 + 3);
    for odd in [
        "blk.x.attn_q.weight",
        "blk.0.attn_q.bias",
        "blk.0.rope_freqs.weight",
        "model.layers.0.self_attn.rotary_emb.inv_freq",
        "model.layers.0.mlp.gate_proj.bias",
        "lm_head.bias",
    ] {
        assert_eq!(hf_name(odd), None, "{odd}");
        assert_eq!(gguf_name(odd), None, "{odd}");
    }
}

/// Hugging Face's query and key rows are llama.cpp's unpermuted: a checkpoint holding them
/// loads as the GGUF weights do, and one holding llama.cpp's rows does not.
#[test]
fn a_checkpoint_in_the_hugging_face_row_order_equals_the_gguf_weights() {
    let config = tiny_config();
    let weights = random_weights(&config);
    let expected =
        logits(&Llama::load(config.clone(), &weights, Device::Cpu, WeightStorage::F32).unwrap());
    let dir = checkpoint_dir(&config, &hf_tensors(&config, &weights, true));
    assert_eq!(
        max_diff(&logits(&load(dir.path()).unwrap()), &expected),
        0.0
    );

    let wrong = checkpoint_dir(&config, &hf_tensors(&config, &weights, false));
    assert!(max_diff(&logits(&load(wrong.path()).unwrap()), &expected) > 1e-3);
}

/// A written model reads back as the same model, its query rows stored in Hugging Face's
/// order; an untied head travels as `lm_head.weight`.
#[test]
fn a_written_model_reads_back_with_hugging_face_rows() {
    // The untied head comes from libtorch's process-global generator: hold it.
    let _generator = crate::train::seeded(4);
    for tied in [true, false] {
        let config = LlamaConfig {
            tied_embeddings: tied,
            ..tiny_config()
        };
        let mut weights = random_weights(&config);
        if !tied {
            weights.0.insert(
                "output.weight".into(),
                Tensor::randn([50, 32], (Kind::Float, Device::Cpu)),
            );
        }
        let model = Llama::load(config.clone(), &weights, Device::Cpu, WeightStorage::F32).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = write_model(&model, Some(3), dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        let checkpoint = Checkpoint::open(dir.path()).unwrap();
        assert_eq!(checkpoint.config(), &config);
        assert_eq!(checkpoint.hf_config().eos_token_id(), Some(3));
        let stored = Tensor::read_safetensors(dir.path().join(WEIGHTS_FILE)).unwrap();
        let stored: HashMap<_, _> = stored.into_iter().collect();
        assert_eq!(stored.contains_key("lm_head.weight"), !tied);
        let q = &stored["model.layers.1.self_attn.q_proj.weight"];
        let gguf_q = &weights.0["blk.1.attn_q.weight"];
        assert_eq!(max_diff(q, &unpermute_rotary_rows(gguf_q, 4)), 0.0);
        let loaded = Llama::load(
            checkpoint.config().clone(),
            &checkpoint,
            Device::Cpu,
            WeightStorage::F32,
        )
        .unwrap();
        assert_eq!(max_diff(&logits(&loaded), &logits(&model)), 0.0);
    }
}

#[test]
fn half_and_bfloat16_tensors_read_as_f32() {
    let config = tiny_config();
    let weights = random_weights(&config);
    for kind in [Kind::Half, Kind::BFloat16] {
        let named: Vec<_> = hf_tensors(&config, &weights, true)
            .into_iter()
            .map(|(n, t)| (n, t.to_kind(kind)))
            .collect();
        let rounded = RandomWeights(
            weights
                .0
                .iter()
                .map(|(n, t)| (n.clone(), t.to_kind(kind).to_kind(Kind::Float)))
                .collect(),
        );
        let expected = logits(
            &Llama::load(config.clone(), &rounded, Device::Cpu, WeightStorage::F32).unwrap(),
        );
        let dir = checkpoint_dir(&config, &named);
        assert_eq!(
            max_diff(&logits(&load(dir.path()).unwrap()), &expected),
            0.0,
            "{kind:?}"
        );
    }
}

/// Shards listed by an index load as one file does; an index naming a missing shard, a path
/// outside the directory or the wrong shard for a tensor is refused, naming the file.
#[test]
fn sharded_weights_load_and_a_bad_index_is_refused() {
    let config = tiny_config();
    let weights = random_weights(&config);
    let expected =
        logits(&Llama::load(config.clone(), &weights, Device::Cpu, WeightStorage::F32).unwrap());
    let named = hf_tensors(&config, &weights, true);
    let (first, second) = named.split_at(named.len() / 2);
    let shards = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ];
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &HfConfig::from_llama(&config, None));
    let mut map = serde_json::Map::new();
    for (shard, part) in shards.iter().zip([first, second]) {
        Tensor::write_safetensors(part, dir.path().join(shard)).unwrap();
        for (name, _) in part {
            map.insert(name.clone(), (*shard).into());
        }
    }
    let write_index = |map: &serde_json::Map<String, Value>| {
        let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
        std::fs::write(dir.path().join(INDEX_FILE), index.to_string()).unwrap();
    };
    write_index(&map);
    let checkpoint = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(checkpoint.weight_files().len(), 2);
    assert_eq!(
        max_diff(&logits(&load(dir.path()).unwrap()), &expected),
        0.0
    );

    let mut missing = map.clone();
    missing.insert(
        "model.norm.weight".into(),
        "model-00003-of-00003.safetensors".into(),
    );
    write_index(&missing);
    let err = Checkpoint::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("model-00003-of-00003.safetensors"), "{err}");
    assert!(err.contains(INDEX_FILE), "{err}");

    let mut outside = map.clone();
    outside.insert("model.norm.weight".into(), "../model.safetensors".into());
    write_index(&outside);
    let err = Checkpoint::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("not a file name"), "{err}");

    let mut swapped = map.clone();
    let (name, _) = first.first().unwrap();
    swapped.insert(name.clone(), shards[1].into());
    write_index(&swapped);
    let err = Checkpoint::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains(name.as_str()) && err.contains(shards[1]),
        "{err}"
    );
}

#[test]
fn a_missing_or_misshapen_tensor_is_named_by_its_hugging_face_name() {
    let config = tiny_config();
    let weights = random_weights(&config);
    let mut named = hf_tensors(&config, &weights, true);
    named.retain(|(n, _)| n != "model.layers.1.mlp.up_proj.weight");
    let dir = checkpoint_dir(&config, &named);
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("model.layers.1.mlp.up_proj.weight") && err.contains("absent"),
        "{err}"
    );

    let mut named = hf_tensors(&config, &weights, true);
    for (n, t) in &mut named {
        if n == "model.layers.0.self_attn.k_proj.weight" {
            *t = Tensor::zeros([8, 32], (Kind::Float, Device::Cpu));
        }
    }
    let dir = checkpoint_dir(&config, &named);
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("model.layers.0.self_attn.k_proj.weight") && err.contains("shape [8, 32]"),
        "{err}"
    );

    // A type that is not a float is refused, naming the tensor and the file.
    let mut named = hf_tensors(&config, &weights, true);
    for (n, t) in &mut named {
        if n == "model.norm.weight" {
            *t = t.to_kind(Kind::Int64);
        }
    }
    let dir = checkpoint_dir(&config, &named);
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("model.norm.weight") && err.contains("I64") && err.contains(WEIGHTS_FILE),
        "{err}"
    );
}

#[test]
fn damaged_or_absent_files_are_refused_naming_them() {
    let config = tiny_config();
    let named = hf_tensors(&config, &random_weights(&config), true);
    let dir = checkpoint_dir(&config, &named);
    let weights = dir.path().join(WEIGHTS_FILE);
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() - 10]).unwrap();
    let err = Checkpoint::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains(WEIGHTS_FILE) && err.contains("does not fit"),
        "{err}"
    );
    std::fs::write(&weights, [200, 0, 0, 0, 0, 0, 0, 0, b'{']).unwrap();
    let err = Checkpoint::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("header of 200 bytes"), "{err}");
    std::fs::write(&weights, [1, 0, 0, 0, 0, 0, 0, 0, b'[']).unwrap();
    let err = Checkpoint::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("not a JSON object"), "{err}");

    std::fs::remove_file(&weights).unwrap();
    let err = Checkpoint::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains(WEIGHTS_FILE) && err.contains(INDEX_FILE),
        "{err}"
    );
    std::fs::remove_file(dir.path().join(CONFIG_FILE)).unwrap();
    let err = Checkpoint::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains(CONFIG_FILE), "{err}");
}

fn smollm2_config_json() -> Value {
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576,
        "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3, "rms_norm_eps": 1e-05, "rope_theta": 100000,
        "vocab_size": 49152, "max_position_embeddings": 8192, "tie_word_embeddings": true,
        "rope_scaling": null, "hidden_act": "silu", "attention_bias": false,
        "mlp_bias": false, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
        "transformers_version": "4.42.3", "use_cache": true, "pretraining_tp": 1
    })
}

fn config_of(json: &Value) -> std::result::Result<LlamaConfig, String> {
    let config: HfConfig = serde_json::from_value(json.clone()).map_err(|e| e.to_string())?;
    config.to_llama()
}

#[test]
fn config_json_reads_into_the_decoder_configuration() {
    let config = config_of(&smollm2_config_json()).unwrap();
    assert_eq!(
        config,
        LlamaConfig {
            block_count: 30,
            embedding_length: 576,
            feed_forward_length: 1536,
            head_count: 9,
            head_count_kv: 3,
            rope_freq_base: 100_000.0,
            rms_norm_eps: 1e-5,
            context_length: 8192,
            vocab_size: 49152,
            tied_embeddings: true,
        }
    );
    // What bcfl writes reads back as the same configuration.
    let written = serde_json::to_value(HfConfig::from_llama(&config, Some(2))).unwrap();
    assert_eq!(config_of(&written).unwrap(), config);
    // transformers' defaults for the keys left out.
    let minimal = serde_json::json!({
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 10,
        "eos_token_id": [5, 6]
    });
    let c = config_of(&minimal).unwrap();
    assert_eq!(c.head_count_kv, 4);
    assert_eq!(
        (c.rms_norm_eps, c.rope_freq_base, c.context_length),
        (1e-6, 10_000.0, 2048)
    );
    assert!(!c.tied_embeddings);
    let hf: HfConfig = serde_json::from_value(minimal).unwrap();
    assert_eq!(hf.eos_token_id(), Some(5));
    // rope_scaling of the default type is plain rotary embeddings.
    let mut default_rope = smollm2_config_json();
    default_rope["rope_scaling"] = serde_json::json!({"rope_type": "default"});
    assert_eq!(config_of(&default_rope).unwrap(), config);
}

#[test]
fn unsupported_or_malformed_configurations_are_refused() {
    let refused = [
        (
            "rope_scaling",
            serde_json::json!({"type": "linear", "factor": 2.0}),
            "rope_scaling",
        ),
        (
            "rope_scaling",
            serde_json::json!({"rope_type": "llama3", "factor": 8.0}),
            "llama3",
        ),
        ("model_type", "mistral".into(), "mistral"),
        ("model_type", Value::Null, "model_type is absent"),
        ("hidden_act", "gelu".into(), "gelu"),
        ("attention_bias", true.into(), "attention_bias"),
        ("head_dim", 32.into(), "head_dim 32"),
        ("num_key_value_heads", 2.into(), "head_count_kv"),
        ("hidden_size", Value::Null, "hidden_size"),
        ("vocab_size", "many".into(), "invalid type"),
    ];
    for (key, value, expected) in refused {
        let mut json = smollm2_config_json();
        match value {
            Value::Null => drop(json.as_object_mut().unwrap().remove(key)),
            value => json[key] = value,
        }
        let err = config_of(&json).unwrap_err();
        assert!(err.contains(expected), "{key}: {err}");
    }
    // The file's path is named, for bad JSON as for a refused configuration.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CONFIG_FILE), "{\"model_type\": ").unwrap();
    let err = Checkpoint::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains(CONFIG_FILE), "{err}");
    let mut json = smollm2_config_json();
    json["rope_scaling"] = serde_json::json!({"type": "dynamic", "factor": 2.0});
    std::fs::write(dir.path().join(CONFIG_FILE), json.to_string()).unwrap();
    let err = Checkpoint::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains(CONFIG_FILE) && err.contains("rope_scaling"),
        "{err}"
    );
}

const TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nBe brief.<|im_end|>\\n' }}{% endif %}{% endfor %}";

/// The tokenizer's files read back as the same chat tokenizer: ids, end of sequence, template;
/// without `tokenizer_config.json` the end of sequence comes from `config.json`.
#[test]
fn the_tokenizer_files_read_back_as_the_same_chat_tokenizer() {
    let bytes = byte_tokenizer();
    let eos = bytes.eos_token_id();
    let tokenizer = ChatTokenizer::new(bytes.inner().clone(), eos, Some(TEMPLATE.into())).unwrap();
    assert_eq!(tokenizer.default_system_prompt(), Some("Be brief."));
    let dir = tempfile::tempdir().unwrap();
    let files =
        write_checkpoint(&crate::llm::model::tests::tiny(), &tokenizer, dir.path()).unwrap();
    assert_eq!(files.len(), 4);
    let read = Checkpoint::open(dir.path()).unwrap().tokenizer().unwrap();
    assert_eq!(read.eos_token_id(), eos);
    assert_eq!(read.chat_template(), Some(TEMPLATE));
    assert_eq!(read.default_system_prompt(), Some("Be brief."));
    let prompt = tokenizer.chat_prompt("Is it yes, no or maybe?");
    assert_eq!(read.chat_prompt("Is it yes, no or maybe?"), prompt);
    assert_eq!(
        read.encode(&prompt).unwrap(),
        tokenizer.encode(&prompt).unwrap()
    );
    assert_eq!(read.stop_ids(), tokenizer.stop_ids());

    std::fs::remove_file(dir.path().join(TOKENIZER_CONFIG_FILE)).unwrap();
    let read = Checkpoint::open(dir.path()).unwrap().tokenizer().unwrap();
    assert_eq!((read.eos_token_id(), read.chat_template()), (eos, None));
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap())
            .unwrap();
    config.as_object_mut().unwrap().remove("eos_token_id");
    std::fs::write(dir.path().join(CONFIG_FILE), config.to_string()).unwrap();
    let err = Checkpoint::open(dir.path())
        .unwrap()
        .tokenizer()
        .unwrap_err();
    assert!(
        err.to_string().contains("no end-of-sequence token"),
        "{err}"
    );
    std::fs::write(
        dir.path().join(TOKENIZER_CONFIG_FILE),
        r#"{"eos_token": {"content": "<|nothing|>"}}"#,
    )
    .unwrap();
    let err = Checkpoint::open(dir.path())
        .unwrap()
        .tokenizer()
        .unwrap_err();
    assert!(err.to_string().contains("<|nothing|>"), "{err}");
}

/// The digest naming a checkpoint changes with its weights and its configuration.
#[test]
fn the_checkpoint_digest_follows_its_files() {
    let dir = tempfile::tempdir().unwrap();
    write_model(&crate::llm::model::tests::tiny(), None, dir.path()).unwrap();
    let first = crate::llm::model_sha256(dir.path()).unwrap();
    assert_eq!(first.len(), 64);
    assert_eq!(
        Checkpoint::open(dir.path()).unwrap().sha256().unwrap(),
        first
    );
    let config = dir.path().join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("float32", "f32")).unwrap();
    assert_ne!(crate::llm::model_sha256(dir.path()).unwrap(), first);
}

/// SmolLM2-135M-Instruct written as a checkpoint directory from its GGUF file and opened again:
/// the same logits, the same ids for chat prompts, the same answer.
#[test]
fn smollm2_exported_to_a_checkpoint_gives_the_gguf_models_answers() {
    let path = match std::env::var_os(GGUF_ENV) {
        Some(p) if Path::new(&p).is_file() => p,
        _ => {
            eprintln!("skipped: {GGUF_ENV} names no file (source scripts/env.sh)");
            return;
        }
    };
    let gguf = LanguageModel::open(&path, Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(gguf.model(), gguf.tokenizer(), dir.path()).unwrap();
    let hf = LanguageModel::open(dir.path(), Device::Cpu).unwrap();
    assert_eq!(hf.model().config(), gguf.model().config());

    let (a, b) = (gguf.tokenizer(), hf.tokenizer());
    assert_eq!(b.eos_token_id(), a.eos_token_id());
    assert_eq!(b.default_system_prompt(), a.default_system_prompt());
    assert_eq!(b.chat_template(), a.chat_template());
    for user in [
        "What is the capital of France?",
        "In 2024, 12345 people paid $3.50 each. Résumé: naïve café!",
        "  Leading spaces,\ttabs\nand <|im_end|> inside.",
    ] {
        let prompt = a.chat_prompt(user);
        assert_eq!(b.chat_prompt(user), prompt);
        assert_eq!(
            b.encode(&prompt).unwrap(),
            a.encode(&prompt).unwrap(),
            "{user}"
        );
    }

    let ids = a
        .encode(&a.chat_prompt("Name three colours."))
        .unwrap()
        .iter()
        .map(|&i| i64::from(i))
        .collect::<Vec<_>>();
    let ids = Tensor::from_slice(&ids).unsqueeze(0);
    let diff = max_diff(
        &gguf.model().forward(&ids, None).unwrap(),
        &hf.model().forward(&ids, None).unwrap(),
    );
    assert!(diff < 1e-5, "logits differ by {diff}");
    drop(gguf);

    let answer = hf
        .generate(&hf.chat_prompt("What is the capital of France?"), 48)
        .unwrap();
    assert!(answer.text.contains("Paris"), "{:?}", answer.text);
}
