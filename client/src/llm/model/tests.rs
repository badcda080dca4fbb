//! The decoder on a tiny random model (cache, masking, rotary permutation) and the known
//! answers of SmolLM2-135M-Instruct (`BCFL_LLM_GGUF`; skipped when absent).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::*;
use crate::llm::gguf::writer::{quantize, GgufWriter};
use crate::llm::gguf::Value;
use crate::llm::quant::GgmlType;
use crate::llm::{LanguageModel, GGUF_ENV};

/// Random weights in GGUF names and row order.
pub(crate) struct RandomWeights(pub(crate) HashMap<String, Tensor>);

impl LlamaWeights for RandomWeights {
    fn tensor(&self, name: &str) -> Result<Option<Tensor>> {
        Ok(self.0.get(name).map(Tensor::shallow_clone))
    }
}

/// The same weights on every call for one configuration: drawn from a generator of their own
/// (not libtorch's process-global one, which tests drawing concurrently without
/// [`crate::train::seeded`] would advance between two calls, so that two `tiny()` models
/// differed now and then).
pub(crate) fn random_weights(config: &LlamaConfig) -> RandomWeights {
    use rand::{Rng as _, SeedableRng as _};
    use rand_distr::{Distribution as _, StandardNormal};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let (dim, ff) = (config.embedding_length, config.feed_forward_length);
    let kv = config.head_count_kv * config.head_dim();
    let mut w = HashMap::new();
    let mut add = |name: String, shape: &[i64], norm: bool| {
        let count = shape.iter().product::<i64>() as usize;
        let values: Vec<f32> = (0..count)
            .map(|_| match norm {
                true => rng.gen::<f32>() + 0.5,
                false => {
                    let x: f32 = StandardNormal.sample(&mut rng);
                    x * 0.2
                }
            })
            .collect();
        w.insert(name, Tensor::from_slice(&values).reshape(shape));
    };
    for i in 0..config.block_count {
        let n = |p: &str| format!("blk.{i}.{p}.weight");
        add(n("attn_norm"), &[dim], true);
        add(n("ffn_norm"), &[dim], true);
        add(n("attn_q"), &[dim, dim], false);
        add(n("attn_k"), &[kv, dim], false);
        add(n("attn_v"), &[kv, dim], false);
        add(n("attn_output"), &[dim, dim], false);
        add(n("ffn_gate"), &[ff, dim], false);
        add(n("ffn_up"), &[ff, dim], false);
        add(n("ffn_down"), &[dim, ff], false);
    }
    add("token_embd.weight".into(), &[config.vocab_size, dim], false);
    add("output_norm.weight".into(), &[dim], true);
    RandomWeights(w)
}

pub(crate) fn tiny() -> Llama {
    let config = LlamaConfig::tiny(50);
    Llama::load(
        config.clone(),
        &random_weights(&config),
        Device::Cpu,
        WeightStorage::F32,
    )
    .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Logits of the last position of `ids` run whole, and fed one by one through the cache
/// after a prefill of `prefill` ids.
fn full_and_cached(model: &Llama, ids: &[u32], prefill: usize) -> (Tensor, Tensor) {
    let full = model.forward(&ids_tensor(ids), None).unwrap().select(1, -1);
    let mut cache = model.new_cache();
    let mut last = model
        .forward(&ids_tensor(&ids[..prefill]), Some(&mut cache))
        .unwrap();
    for &id in &ids[prefill..] {
        last = model.forward(&ids_tensor(&[id]), Some(&mut cache)).unwrap();
    }
    assert_eq!(cache.len(), ids.len() as i64);
    (full, last.select(1, -1))
}

#[test]
fn the_last_positions_logits_equal_the_full_forward_passs_last_row() {
    let model = tiny();
    let ids = ids_tensor(&[3, 1, 4, 1, 5, 9, 2, 6]);
    let full = model.forward(&ids, None).unwrap();
    let last = model.forward_last(&ids, None).unwrap();
    assert_eq!(last.size(), [1, 50]);
    assert!(last.allclose(&full.select(1, -1), 1e-5, 1e-5, false));
    let mut cache = model.new_cache();
    let prefill = model
        .forward_last(&ids_tensor(&[3, 1, 4, 1, 5, 9, 2]), Some(&mut cache))
        .unwrap();
    assert!(prefill.allclose(&full.select(1, -2), 1e-5, 1e-5, false));
    let step = model
        .forward_last(&ids_tensor(&[6]), Some(&mut cache))
        .unwrap();
    assert!(step.allclose(&last, 1e-5, 1e-5, false));
    assert_eq!(cache.len(), 8);
}

#[test]
fn cached_steps_equal_the_full_forward_pass() {
    let model = tiny();
    let ids = [3, 14, 15, 9, 26, 5, 35, 8];
    for prefill in [1, 3, 7] {
        let (full, cached) = full_and_cached(&model, &ids, prefill);
        assert!(max_diff(&full, &cached) < 1e-5, "prefill {prefill}");
    }
    // A multi-token chunk after a prefix (the mask must offset by the cached length).
    let mut cache = model.new_cache();
    let _ = model
        .forward(&ids_tensor(&ids[..3]), Some(&mut cache))
        .unwrap();
    let chunk = model
        .forward(&ids_tensor(&ids[3..]), Some(&mut cache))
        .unwrap();
    let full = model.forward(&ids_tensor(&ids), None).unwrap();
    assert!(max_diff(&full.narrow(1, 3, 5), &chunk) < 1e-5);
}

#[test]
fn attention_is_causal() {
    let model = tiny();
    let a = model.forward(&ids_tensor(&[1, 2, 3, 4]), None).unwrap();
    let b = model.forward(&ids_tensor(&[1, 2, 3, 40]), None).unwrap();
    assert!(max_diff(&a.narrow(1, 0, 3), &b.narrow(1, 0, 3)) < 1e-6);
    assert!(max_diff(&a.select(1, 3), &b.select(1, 3)) > 1e-3);
}

#[test]
fn rotary_permutation_round_trips() {
    let w = Tensor::arange(6 * 64 * 5, (Kind::Float, Device::Cpu)).reshape([6 * 64, 5]);
    let back = unpermute_rotary_rows(&permute_rotary_rows(&w, 6), 6);
    assert_eq!(max_diff(&w, &back), 0.0);
    // Rows 0 and 1 of llama.cpp's layout are Hugging Face's rows 0 and head_dim / 2.
    let p = permute_rotary_rows(&w, 6);
    assert_eq!(max_diff(&p.get(1), &w.get(32)), 0.0);
}

/// A GGUF file of a decoder of `config` with `weights` (GGUF names and rows), each tensor
/// stored as `kind` says ([`quantize`]).
pub(crate) fn gguf_of(
    config: &LlamaConfig,
    weights: &RandomWeights,
    kind: impl Fn(&str) -> GgmlType,
) -> GgufFile {
    let int = |v: i64| Value::U32(v as u32);
    let mut writer = GgufWriter::new(3)
        .metadata("general.architecture", Value::String("llama".into()))
        .metadata("llama.block_count", int(config.block_count))
        .metadata("llama.embedding_length", int(config.embedding_length))
        .metadata("llama.feed_forward_length", int(config.feed_forward_length))
        .metadata("llama.attention.head_count", int(config.head_count))
        .metadata("llama.attention.head_count_kv", int(config.head_count_kv))
        .metadata(
            "llama.rope.freq_base",
            Value::F32(config.rope_freq_base as f32),
        )
        .metadata(
            "llama.attention.layer_norm_rms_epsilon",
            Value::F64(config.rms_norm_eps),
        )
        .metadata("llama.context_length", int(config.context_length))
        .metadata("llama.vocab_size", int(config.vocab_size));
    let mut names: Vec<_> = weights.0.keys().cloned().collect();
    names.sort();
    for name in names {
        let t = &weights.0[&name];
        let dims: Vec<u64> = t.size().iter().rev().map(|&d| d as u64).collect();
        let values = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
        let kind = kind(&name);
        writer = writer.tensor(&name, &dims, kind, quantize(kind, &values));
    }
    GgufFile::from_bytes(writer.build().0).unwrap()
}

/// A model written to a GGUF file and read back gives the logits of the weights it was
/// written from (names, dimension order, metadata).
#[test]
fn a_model_round_trips_through_a_gguf_file() {
    let config = LlamaConfig::tiny(50);
    let weights = random_weights(&config);
    let direct = Llama::load(config.clone(), &weights, Device::Cpu, WeightStorage::F32).unwrap();
    let file = gguf_of(&config, &weights, |_| GgmlType::F32);
    let loaded = Llama::from_gguf(&file, Device::Cpu, WeightStorage::F32).unwrap();
    assert_eq!(loaded.config(), direct.config());
    let ids = ids_tensor(&[1, 7, 3, 9]);
    let a = direct.forward(&ids, None).unwrap();
    let b = loaded.forward(&ids, None).unwrap();
    assert_eq!(max_diff(&a, &b), 0.0);
}

/// ggml's rotary embedding (adjacent pairs) on llama.cpp's row order gives the attention
/// scores of Hugging Face's `rotate_half` on the unpermuted rows: the two layouts differ only
/// by a permutation of each head's dimensions, which dot products do not see.
#[test]
fn unpermuted_rows_with_rotate_half_equal_ggml_interleaved_rope() {
    let _seed = crate::train::seeded(3);
    let config = LlamaConfig::tiny(50);
    let (heads, hd, dim, t) = (
        config.head_count,
        config.head_dim(),
        config.embedding_length,
        6,
    );
    let opts = (Kind::Float, Device::Cpu);
    let w_hf = Tensor::randn([dim, dim], opts);
    let w_ggml = permute_rotary_rows(&w_hf, heads);
    let x = Tensor::randn([t, dim], opts);

    let rope = Rope::new(&config, Device::Cpu);
    let q_hf = x
        .linear(&unpermute_rotary_rows(&w_ggml, heads), None::<Tensor>)
        .reshape([1, t, heads, hd])
        .transpose(1, 2);
    let q_hf = rope.apply(&q_hf, 2);

    // ggml "normal" rope: (q[2i], q[2i+1]) rotated by position · base^(-2i/hd).
    let q = x
        .linear(&w_ggml, None::<Tensor>)
        .reshape([t, heads, hd / 2, 2]);
    let (a, b) = (q.select(3, 0), q.select(3, 1));
    let inv_freq = Tensor::arange_start_step(0, hd, 2, opts)
        .divide_scalar(hd as f64)
        .multiply_scalar(-(config.rope_freq_base.ln()))
        .exp();
    let angles = (Tensor::arange_start(2, 2 + t, opts).unsqueeze(1) * inv_freq).unsqueeze(1);
    let (cos, sin) = (angles.cos(), angles.sin());
    let rotated = Tensor::stack(&[&a * &cos - &b * &sin, &a * &sin + &b * &cos], 3);
    let q_ggml = rotated.reshape([1, t, heads, hd]).transpose(1, 2);

    let scores = |q: &Tensor| q.matmul(&q.transpose(-2, -1));
    assert!(max_diff(&scores(&q_hf), &scores(&q_ggml)) < 1e-3);
    // Without undoing the permutation, rotate_half scores differently.
    let wrong = rope.apply(
        &x.linear(&w_ggml, None::<Tensor>)
            .reshape([1, t, heads, hd])
            .transpose(1, 2),
        2,
    );
    assert!(max_diff(&scores(&wrong), &scores(&q_ggml)) > 1e-2);
}

#[test]
fn missing_or_misshapen_tensors_are_named() {
    let config = LlamaConfig::tiny(50);
    let mut weights = random_weights(&config);
    weights.0.remove("blk.1.ffn_up.weight");
    let err = Llama::load(config.clone(), &weights, Device::Cpu, WeightStorage::F32).unwrap_err();
    assert!(err.to_string().contains("blk.1.ffn_up.weight"), "{err}");
    let mut weights = random_weights(&config);
    weights.0.insert(
        "blk.0.attn_k.weight".into(),
        Tensor::zeros([8, 32], (Kind::Float, Device::Cpu)),
    );
    let err = Llama::load(config, &weights, Device::Cpu, WeightStorage::F32).unwrap_err();
    assert!(err.to_string().contains("shape"), "{err}");
}

/// SmolLM2-135M-Instruct, loaded once for all the tests that need it; `None` (the tests
/// skip) when `BCFL_LLM_GGUF` is unset or names no file.
fn smollm2() -> Option<std::sync::MutexGuard<'static, LanguageModel>> {
    static MODEL: OnceLock<Option<Mutex<LanguageModel>>> = OnceLock::new();
    let model = MODEL.get_or_init(|| {
        let path = match std::env::var_os(GGUF_ENV) {
            Some(p) if std::path::Path::new(&p).is_file() => p,
            Some(p) => {
                eprintln!("skipped: {GGUF_ENV}={} is not a file", p.to_string_lossy());
                return None;
            }
            None => {
                eprintln!("skipped: {GGUF_ENV} is not set (source scripts/env.sh)");
                return None;
            }
        };
        let lm = LanguageModel::open(&path, Device::Cpu).expect("the GGUF model loads");
        Some(Mutex::new(lm))
    });
    model
        .as_ref()
        .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
}

#[test]
fn smollm2_config_is_read_from_the_metadata() {
    let Some(lm) = smollm2() else { return };
    let c = lm.model().config();
    assert_eq!(
        (c.block_count, c.embedding_length, c.feed_forward_length),
        (30, 576, 1536)
    );
    assert_eq!((c.head_count, c.head_count_kv, c.head_dim()), (9, 3, 64));
    assert_eq!((c.vocab_size, c.context_length), (49152, 8192));
    assert_eq!(c.rope_freq_base, 100_000.0);
    assert!((c.rms_norm_eps - 1e-5).abs() < 1e-12);
    assert!(c.tied_embeddings);
}

#[test]
fn smollm2_tokenizer_round_trips_with_special_tokens() {
    let Some(lm) = smollm2() else { return };
    let tok = lm.tokenizer();
    for (token, id) in [("<|endoftext|>", 0), ("<|im_start|>", 1), ("<|im_end|>", 2)] {
        assert_eq!(tok.encode(token).unwrap(), [id], "{token}");
    }
    assert_eq!(tok.eos_token_id(), 2);
    let text = "<|im_start|>user\nIn 2024, 12345 people paid $3.50 each.<|im_end|>\n";
    let ids = tok.encode(text).unwrap();
    assert_eq!(ids[0], 1);
    assert!(ids.contains(&2));
    // Digits are split one by one.
    let digits: Vec<String> = tok
        .encode("12345")
        .unwrap()
        .iter()
        .map(|&i| tok.decode(&[i], false).unwrap())
        .collect();
    assert_eq!(digits, ["1", "2", "3", "4", "5"]);
    assert_eq!(tok.decode(&ids, false).unwrap(), text);
    assert_eq!(
        tok.decode(&ids, true).unwrap(),
        "user\nIn 2024, 12345 people paid $3.50 each.\n"
    );
    // No BOS is prepended, and a leading space is kept as its own byte-level mark.
    assert_eq!(
        tok.decode(&tok.encode(" Hello").unwrap(), false).unwrap(),
        " Hello"
    );
}

#[test]
fn smollm2_answers_paris() {
    let Some(lm) = smollm2() else { return };
    let prompt = lm.chat_prompt("What is the capital of France?");
    assert!(prompt.starts_with(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    ));
    let answer = lm.generate(&prompt, 48).unwrap();
    let g = &answer.generation;
    eprintln!(
        "answer {:?}: {} prompt tokens at {:.1}/s, {} new at {:.1}/s",
        answer.text,
        g.prompt_tokens,
        g.prefill_tokens_per_second(),
        g.ids.len(),
        g.decode_tokens_per_second()
    );
    assert!(answer.text.contains("Paris"), "{:?}", answer.text);
}

#[test]
fn smollm2_log_probs_are_finite_and_the_cache_is_exact() {
    let Some(lm) = smollm2() else { return };
    let ids = lm
        .tokenizer()
        .encode("The quick brown fox jumps over the lazy dog.")
        .unwrap();
    let log_probs = lm.model().token_log_probs(&ids).unwrap();
    assert_eq!(log_probs.len(), ids.len() - 1);
    assert!(
        log_probs.iter().all(|p| p.is_finite() && *p <= 0.0),
        "{log_probs:?}"
    );
    // "lazy dog" after "over the" is near certain for any language model.
    assert!(log_probs.last().unwrap() > &-3.0, "{log_probs:?}");

    let (full, cached) = full_and_cached(lm.model(), &ids, 4);
    let diff = max_diff(&full, &cached);
    assert!(diff < 1e-4, "cached logits differ by {diff}");
}

/// SmolLM2 with its Q4_1 and Q8_0 matrices kept quantized: the logits of the dequantized model,
/// the blocks' bytes, the same answer.
#[test]
fn smollm2_kept_quantized_gives_the_dequantized_models_logits() {
    let Some(lm) = smollm2() else { return };
    let path = std::env::var_os(GGUF_ENV).expect("smollm2() found it");
    let kept = LanguageModel::open_with(&path, Device::Cpu, WeightStorage::Quantized).unwrap();
    let (dense, kept_model) = (lm.model(), kept.model());
    assert!(kept_model.is_quantized());
    assert_eq!(kept_model.parameter_count(), dense.parameter_count());
    // 30 blocks of Q4_1 matrices (20 bytes a block of 32), the Q8_0 embedding (34 bytes a
    // block), the f32 norms.
    let block_values = 576 * (576 + 192 + 192 + 576 + 3 * 1536);
    let expected = 30 * block_values / 32 * 20 + 49152 * 576 / 32 * 34 + (2 * 30 + 1) * 576 * 4;
    assert_eq!(kept_model.weight_bytes(), expected);
    assert_eq!(dense.weight_bytes(), 538_060_032);

    let ids = lm
        .tokenizer()
        .encode(&lm.chat_prompt("Name three colours."))
        .unwrap();
    let ids = ids_tensor(&ids);
    let diff = max_diff(
        &dense.forward(&ids, None).unwrap(),
        &kept_model.forward(&ids, None).unwrap(),
    );
    // Equal weights; 30 blocks of products summed in another order (chunked) differ in the
    // last bits: 7.5e-5 was seen with two libtorch threads, on logits of magnitude ~20.
    assert!(diff < 1e-3, "logits differ by {diff}");
    let answer = kept
        .generate(&kept.chat_prompt("What is the capital of France?"), 48)
        .unwrap();
    assert!(answer.text.contains("Paris"), "{:?}", answer.text);
}
