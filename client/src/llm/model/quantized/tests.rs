//! Quantized matrices against the reference dequantizer, and a tiny decoder written as a GGUF
//! file of `Q8_0`, `Q4_0` and `Q4_1` matrices, kept quantized and dequantized: the same
//! outputs, the same training step of its adapters, the bytes of the blocks.

use tch::nn::{self, OptimizerConfig as _};
use tch::{Device, Kind, Tensor};

use super::*;
use crate::llm::config::LlamaConfig;
use crate::llm::gguf::writer::quantize;
use crate::llm::lora::LlamaLora;
use crate::llm::model::tests::{gguf_of, random_weights};
use crate::llm::model::{unpermute_rotary_rows, Llama, WeightStorage};
use crate::llm::quant::dequantize;
use crate::train::lora::LoraConfig;

const KINDS: [GgmlType; 3] = [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1];

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// A random `rows × cols` matrix as `kind` blocks, and its reference dequantization.
fn random_blocks(kind: GgmlType, rows: i64, cols: i64) -> (Vec<u8>, Tensor) {
    let values =
        Vec::<f32>::try_from(Tensor::randn([rows * cols], (Kind::Float, Device::Cpu)) * 0.3 + 0.05)
            .unwrap();
    let bytes = quantize(kind, &values);
    let reference = dequantize(kind, &bytes, (rows * cols) as u64).unwrap();
    (bytes, Tensor::from_slice(&reference).reshape([rows, cols]))
}

#[test]
fn blocks_dequantize_to_the_reference_values_bit_for_bit() {
    let _seed = crate::train::seeded(11);
    for kind in KINDS {
        let (bytes, reference) = random_blocks(kind, 24, 96);
        let m = QuantizedMatrix::from_blocks("w", kind, [24, 96], &bytes).unwrap();
        assert_eq!((m.kind(), m.shape()), (kind, [24, 96]));
        assert!(m.dequantize().equal(&reference), "{kind}");
        // The bytes held are the blocks' bytes.
        assert_eq!(m.bytes(), bytes.len() as i64, "{kind}");
        // Rows picked as an embedding lookup.
        let ids = Tensor::from_slice(&[3i64, 0, 23, 3, 7, 11]).reshape([2, 3]);
        let rows = m.rows(&ids);
        assert_eq!(rows.size(), [2, 3, 96]);
        let expected = reference
            .index_select(0, &ids.flatten(0, -1))
            .reshape([2, 3, 96]);
        assert!(rows.equal(&expected), "{kind}");
        // Rows moved whole, as the rotary permutation moves them.
        let moved = m.map_rows(|t| unpermute_rotary_rows(t, 3));
        assert!(moved
            .dequantize()
            .equal(&unpermute_rotary_rows(&reference, 3)));
    }
}

/// `x Wᵀ` of a matrix larger than a chunk equals the product with the whole matrix.
#[test]
fn a_large_matrix_is_applied_a_chunk_at_a_time() {
    let _seed = crate::train::seeded(12);
    let (rows, cols) = (1000, 544);
    assert!(rows * cols > CHUNK_VALUES && CHUNK_VALUES / cols < rows);
    let (bytes, reference) = random_blocks(GgmlType::Q8_0, rows, cols);
    let m = QuantizedMatrix::from_blocks("w", GgmlType::Q8_0, [rows, cols], &bytes).unwrap();
    let x = Tensor::randn([2, 3, cols], (Kind::Float, Device::Cpu));
    let y = m.linear(&x);
    assert_eq!(y.size(), [2, 3, rows]);
    let diff = max_diff(&y, &x.linear(&reference, None::<Tensor>));
    // The same values, summed in another order when libtorch uses several threads (1.05e-5
    // was seen with two).
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn unsupported_types_and_inconsistent_sizes_are_refused_naming_the_tensor() {
    let err =
        QuantizedMatrix::from_blocks("blk.0.attn_q.weight", GgmlType::Q4_K, [1, 256], &[0; 144])
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("blk.0.attn_q.weight") && err.contains("Q4_K"),
        "{err}"
    );
    let err = QuantizedMatrix::from_blocks("w", GgmlType::Q8_0, [2, 48], &[0; 102])
        .unwrap_err()
        .to_string();
    assert!(err.contains("whole blocks"), "{err}");
    let err = QuantizedMatrix::from_blocks("w", GgmlType::Q4_1, [2, 32], &[0; 39])
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs 40 bytes, got 39"), "{err}");
    assert!(!QuantizedMatrix::holds(GgmlType::F16));
}

/// A tiny decoder (rows of whole blocks) whose matrices are stored in each kept type: the
/// embedding (the tied head) in `Q8_0`, the values in `Q4_0`, the other matrices in `Q4_1`,
/// one in `F32`; the norms in `F32`.
fn tiny_quantized() -> (LlamaConfig, crate::llm::gguf::GgufFile) {
    let config = LlamaConfig {
        feed_forward_length: 64,
        ..LlamaConfig::tiny(50)
    };
    let weights = random_weights(&config);
    let file = gguf_of(&config, &weights, |name| match name {
        "token_embd.weight" => GgmlType::Q8_0,
        "blk.1.ffn_down.weight" => GgmlType::F32,
        n if n.contains("norm") => GgmlType::F32,
        n if n.contains("attn_v") => GgmlType::Q4_0,
        _ => GgmlType::Q4_1,
    });
    (config, file)
}

fn both() -> (Llama, Llama) {
    let (_, file) = tiny_quantized();
    let dense = Llama::from_gguf(&file, Device::Cpu, WeightStorage::F32).unwrap();
    let kept = Llama::from_gguf(&file, Device::Cpu, WeightStorage::Quantized).unwrap();
    (dense, kept)
}

fn ids(ids: &[i64]) -> Tensor {
    Tensor::from_slice(ids).unsqueeze(0)
}

#[test]
fn a_decoder_kept_quantized_gives_the_dequantized_decoders_outputs() {
    let (dense, kept) = both();
    assert!(kept.is_quantized() && !dense.is_quantized());
    assert_eq!(kept.parameter_count(), dense.parameter_count());
    let prompt = ids(&[1, 7, 3, 9, 22, 41, 5]);
    let diff = max_diff(
        &dense.forward(&prompt, None).unwrap(),
        &kept.forward(&prompt, None).unwrap(),
    );
    assert!(diff < 1e-5, "logits differ by {diff}");
    // Through the cache, one token at a time, and in greedy generation.
    let (mut a, mut b) = (dense.new_cache(), kept.new_cache());
    for id in [1, 7, 3] {
        let diff = max_diff(
            &dense.forward(&ids(&[id]), Some(&mut a)).unwrap(),
            &kept.forward(&ids(&[id]), Some(&mut b)).unwrap(),
        );
        assert!(diff < 1e-5, "cached logits differ by {diff}");
    }
    let (g, h) = (
        dense.generate_greedy(&[1, 7, 3], 12, &[]).unwrap(),
        kept.generate_greedy(&[1, 7, 3], 12, &[]).unwrap(),
    );
    assert_eq!(g.ids, h.ids);
    // The frozen prefix's states, and the weights written out.
    let diff = max_diff(
        &dense.hidden_states(&prompt, 1).unwrap(),
        &kept.hidden_states(&prompt, 1).unwrap(),
    );
    assert!(diff < 1e-5, "hidden states differ by {diff}");
    for ((n, a), (m, b)) in dense.named_weights().iter().zip(kept.named_weights()) {
        assert_eq!(n, &m);
        assert!(a.equal(&b), "{n}");
    }
}

/// `weight_bytes` counts the blocks' bytes of the matrices kept quantized.
#[test]
fn the_weight_bytes_are_the_bytes_held() {
    let (dense, kept) = both();
    let c = dense.config();
    let (dim, ff, kv) = (
        c.embedding_length,
        c.feed_forward_length,
        c.head_count_kv * c.head_dim(),
    );
    let blocks = |kind: GgmlType, values: i64| values / 32 * kind.block_bytes() as i64;
    let norms = (2 * c.block_count + 1) * dim * 4;
    let per_block_q4_1 = dim * dim * 2 + kv * dim + ff * dim * 2;
    let expected = norms
        + blocks(GgmlType::Q8_0, c.vocab_size * dim)
        + c.block_count * blocks(GgmlType::Q4_0, kv * dim)
        + c.block_count * blocks(GgmlType::Q4_1, per_block_q4_1)
        + blocks(GgmlType::Q4_1, dim * ff)
        + dim * ff * 4;
    assert_eq!(kept.weight_bytes(), expected);
    assert_eq!(dense.weight_bytes(), dense.parameter_count() * 4);
    assert!(kept.weight_bytes() * 3 < dense.weight_bytes());

    // Nothing is quantized in a floating-point source: the storage changes nothing.
    let config = LlamaConfig::tiny(50);
    let weights = random_weights(&config);
    let model = Llama::load(config, &weights, Device::Cpu, WeightStorage::Quantized).unwrap();
    assert!(!model.is_quantized());
    assert_eq!(model.weight_bytes(), model.parameter_count() * 4);
}

/// Adapters on a quantized base train as on the dequantized one: the same loss and gradients
/// through the frozen prefix's states and the adapted top layer, the same weights after an
/// AdamW step.
#[test]
fn adapters_train_on_a_base_kept_quantized_as_on_the_dequantized_one() {
    let (mut dense, mut kept) = both();
    let lora = LoraConfig {
        dropout: 0.0,
        targets: crate::llm::lora::TARGETS.map(String::from).to_vec(),
        ..LlamaLora::for_top_layers(LlamaLora::flowertune(), dense.config(), 1)
    };
    for model in [&mut dense, &mut kept] {
        let _seed = crate::train::seeded(5);
        model.attach_lora(lora.clone()).unwrap();
        // B = 0 would leave the base's gradient path untested: give every B a value (in name
        // order, so that both models draw the same).
        let mut vars: Vec<_> = model
            .adapters()
            .unwrap()
            .store()
            .variables()
            .into_iter()
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        tch::no_grad(|| {
            for (name, mut var) in vars {
                if name.ends_with("lora_b") {
                    var.copy_(&(Tensor::randn(var.size(), (Kind::Float, Device::Cpu)) * 0.1));
                }
            }
        });
    }
    let prompt = ids(&[1, 7, 3, 9, 22]);
    let target = Tensor::from_slice(&[13i64]);
    let step = |model: &Llama| -> (f64, Vec<(String, Tensor)>) {
        let store = model.adapters().unwrap().store();
        let mut optimizer = nn::AdamW::default().build(store, 1e-2).unwrap();
        let layer = model.frozen_layers();
        let hidden = model.hidden_states(&prompt, layer).unwrap();
        let logits = model.last_logits_from_t(&hidden, layer, true).unwrap();
        let loss = logits.cross_entropy_for_logits(&target);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        let mut vars: Vec<_> = store.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        (f64::try_from(&loss).unwrap(), vars)
    };
    let ((loss_a, after_a), (loss_b, after_b)) = (step(&dense), step(&kept));
    assert!((loss_a - loss_b).abs() < 1e-5, "{loss_a} {loss_b}");
    assert_eq!(after_a.len(), 2 * 7);
    for ((name, a), (_, b)) in after_a.iter().zip(&after_b) {
        let diff = max_diff(a, b);
        assert!(diff < 1e-5, "{name} differs by {diff}");
    }
    let diff = max_diff(
        &dense.forward(&prompt, None).unwrap(),
        &kept.forward(&prompt, None).unwrap(),
    );
    assert!(diff < 1e-5, "trained logits differ by {diff}");
}

/// A quantized matrix of the wrong shape is refused, naming it, as a float one is.
#[test]
fn a_misshapen_quantized_matrix_is_named() {
    let config = LlamaConfig {
        feed_forward_length: 64,
        ..LlamaConfig::tiny(50)
    };
    let mut weights = random_weights(&config);
    weights.0.insert(
        "blk.0.ffn_up.weight".into(),
        Tensor::zeros([32, 32], (Kind::Float, Device::Cpu)),
    );
    let file = gguf_of(&config, &weights, |name| match name.contains("norm") {
        true => GgmlType::F32,
        false => GgmlType::Q8_0,
    });
    for storage in [WeightStorage::F32, WeightStorage::Quantized] {
        let err = Llama::from_gguf(&file, Device::Cpu, storage)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("blk.0.ffn_up.weight") && err.contains("expected [64, 32]"),
            "{storage:?}: {err}"
        );
    }
}
