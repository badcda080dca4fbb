//! The decoder's adapters: known parameter counts and update sizes, `B = 0` leaves the decoder
//! unchanged, gradients reach only the adapters, and the cached prefix is exact.

use tch::{Kind, Tensor};

use super::*;
use crate::llm::model::tests::tiny;
use crate::train::tensors::StoreTensors as _;

fn llama3_8b() -> LlamaConfig {
    LlamaConfig {
        block_count: 32,
        embedding_length: 4096,
        feed_forward_length: 14_336,
        head_count: 32,
        head_count_kv: 8,
        context_length: 8192,
        ..LlamaConfig::tiny(128_256)
    }
}

/// SmolLM2-135M's shape (`BCFL_LLM_GGUF`'s metadata).
fn smollm2_135m() -> LlamaConfig {
    LlamaConfig {
        block_count: 30,
        embedding_length: 576,
        feed_forward_length: 1536,
        head_count: 9,
        head_count_kv: 3,
        context_length: 8192,
        rope_freq_base: 100_000.0,
        ..LlamaConfig::tiny(49_152)
    }
}

#[test]
fn llama3_8b_with_rank_32_on_query_and_value_trains_13_631_488_parameters() {
    let lora = LlamaLora::flowertune();
    assert_eq!(trainable_parameters(&llama3_8b(), &lora), 13_631_488);
    // Per layer: q 32·(4096 + 4096) + v 32·(4096 + 1024).
    assert_eq!(13_631_488, 32 * (32 * 8192 + 32 * 5120));
    // The top 2 layers only.
    let top = LlamaLora::for_top_layers(lora, &llama3_8b(), 2);
    assert_eq!(top.from_layer, 30);
    assert_eq!(trainable_parameters(&llama3_8b(), &top), 2 * 425_984);
}

#[test]
fn smollm2_flowertune_update_bytes_against_the_whole_model() {
    let size = UpdateSize::new(&smollm2_135m(), &LlamaLora::flowertune());
    // 30 layers · (q 32·(576 + 576) + v 32·(576 + 192)).
    assert_eq!(size.parameters, 1_843_200);
    assert_eq!(size.model_parameters, 134_515_008);
    assert_eq!(size.model_f32_bytes, 538_060_032);
    // Payload plus the canonical header (8-byte length, JSON padded to 8) of 120 tensors.
    assert_eq!(size.f32_bytes, 7_372_800 + 10_656);
    assert_eq!(size.int8_bytes, 1_843_200 + 14_592);
    // A trained update's scales lengthen the int8 header by at most 16 bytes per tensor.
    let mut trained = update_template(&smollm2_135m(), &LlamaLora::flowertune());
    for (_, values) in trained.tensors.values_mut() {
        values[0] = -0.123_456_79;
    }
    let int8 = trained.to_bytes(Encoding::Int8).len() as u64;
    assert!(int8 >= size.int8_bytes && int8 <= size.int8_bytes + 16 * 120 + 8);
    assert_eq!(trained.to_bytes(Encoding::F32).len() as u64, size.f32_bytes);
}

#[test]
fn adapters_are_named_after_the_tensors_they_adapt_and_round_trip() {
    // attach_lora draws A from libtorch's process-global generator: hold it.
    let _generator = crate::train::seeded(1);
    let mut model = tiny();
    let lora = LoraConfig {
        rank: 4,
        targets: TARGETS.iter().map(|t| t.to_string()).collect(),
        from_layer: 1,
        ..LoraConfig::default()
    };
    model.attach_lora(lora.clone()).unwrap();
    let adapters = model.adapters().unwrap();
    let update = Update::from_store(adapters.store()).unwrap();
    let template = update_template(model.config(), &lora);
    assert_eq!(update.layout(), template.layout());
    assert!(update.tensors.contains_key("blk.1.attn_q.lora_a"));
    assert!(update.tensors.contains_key("blk.1.ffn_down.lora_b"));
    assert!(!update.tensors.keys().any(|n| n.starts_with("blk.0.")));
    assert_eq!(adapters.parameters(), update.parameters() as i64);
    assert_eq!(model.frozen_layers(), 1);
    // Bytes in, bytes out.
    let bytes = update.to_bytes(Encoding::F32);
    let back = Update::from_bytes(&bytes).unwrap();
    back.apply_to(adapters.store()).unwrap();
    assert_eq!(Update::from_store(adapters.store()).unwrap(), update);
}

#[test]
fn fresh_adapters_leave_the_decoder_unchanged_and_trained_ones_do_not() {
    // attach_lora draws A from libtorch's process-global generator: hold it.
    let _generator = crate::train::seeded(2);
    // One model before and after: tests running alongside draw from libtorch's generator.
    let mut adapted = tiny();
    let ids = Tensor::from_slice(&[1i64, 7, 3, 9, 4, 2]).unsqueeze(0);
    let before = adapted.forward(&ids, None).unwrap();
    adapted
        .attach_lora(LoraConfig {
            rank: 3,
            dropout: 0.0,
            targets: TARGETS.iter().map(|t| t.to_string()).collect(),
            ..LoraConfig::default()
        })
        .unwrap();
    // Exactly: every adapter adds `x·Aᵀ·0`.
    assert!(adapted.forward(&ids, None).unwrap().equal(&before));
    tch::no_grad(|| {
        for (name, mut v) in adapted.adapters().unwrap().store().variables() {
            if name.ends_with("lora_b") {
                v.copy_(&(Tensor::randn(v.size(), (Kind::Float, tch::Device::Cpu)) * 0.1));
            }
        }
    });
    let after = adapted.forward(&ids, None).unwrap();
    assert!(!after.allclose(&before, 1e-4, 1e-4, false));
}

#[test]
fn gradients_reach_only_the_adapters_of_the_top_layers() {
    // attach_lora draws A from libtorch's process-global generator: hold it.
    let _generator = crate::train::seeded(3);
    let mut model = tiny();
    model
        .attach_lora(LoraConfig {
            rank: 2,
            dropout: 0.0,
            from_layer: 1,
            ..LoraConfig::default()
        })
        .unwrap();
    let ids = Tensor::from_slice(&[5i64, 8, 13, 21]).unsqueeze(0);
    let hidden = model.hidden_states(&ids, model.frozen_layers()).unwrap();
    assert!(!hidden.requires_grad());
    let logits = model
        .last_logits_from_t(&hidden, model.frozen_layers(), true)
        .unwrap();
    let loss = logits.cross_entropy_for_logits(&Tensor::from_slice(&[3i64]));
    loss.backward();
    let store = model.adapters().unwrap().store();
    let variables = store.variables();
    assert_eq!(variables.len(), 4, "q and v of layer 1");
    for (name, v) in variables {
        let grad = v.grad();
        assert!(grad.defined(), "{name} has a gradient");
        // B = 0 at the start: A's gradient is zero, B's is not.
        let norm = grad.norm().double_value(&[]);
        assert_eq!(norm > 0.0, name.ends_with("lora_b"), "{name}: {norm}");
    }
    // The frozen base took no part in autograd.
    assert!(!model.hidden_states(&ids, 2).unwrap().requires_grad());
}

#[test]
fn the_cached_prefix_gives_the_full_forward_pass() {
    // attach_lora draws A from libtorch's process-global generator: hold it.
    let _generator = crate::train::seeded(4);
    let mut model = tiny();
    model
        .attach_lora(LoraConfig {
            from_layer: 1,
            ..LoraConfig::default()
        })
        .unwrap();
    let ids = Tensor::from_slice(&[2i64, 4, 6, 8, 10]).unsqueeze(0);
    let full = model.forward(&ids, None).unwrap().select(1, -1);
    for layer in 0..=2 {
        let hidden = model.hidden_states(&ids, layer).unwrap();
        let from = model.last_logits_from_t(&hidden, layer, false).unwrap();
        assert!(
            from.allclose(&full, 1e-5, 1e-5, false),
            "from layer {layer}"
        );
    }
}

#[test]
fn trained_adapters_on_every_projection_give_the_full_forward_pass_from_any_layer() {
    // attach_lora draws A from libtorch's process-global generator: hold it.
    let _generator = crate::train::seeded(5);
    // The split forward pass runs the last block at the last position only: it must equal the
    // full pass with adapters that change every projection.
    let mut model = tiny();
    model
        .attach_lora(LoraConfig {
            targets: TARGETS.iter().map(|t| t.to_string()).collect(),
            dropout: 0.0,
            from_layer: 0,
            ..LoraConfig::default()
        })
        .unwrap();
    tch::no_grad(|| {
        for (_, mut var) in model.adapters().unwrap().store().variables() {
            var.copy_(&(Tensor::randn(var.size(), (Kind::Float, tch::Device::Cpu)) * 0.2));
        }
    });
    let ids = Tensor::from_slice(&[2i64, 4, 6, 8, 10, 12, 1]).unsqueeze(0);
    let full = model.forward(&ids, None).unwrap().select(1, -1);
    for layer in 0..=model.config().block_count {
        let hidden = model.hidden_states(&ids, layer).unwrap();
        let from = model.last_logits_from_t(&hidden, layer, false).unwrap();
        assert!(
            from.allclose(&full, 1e-5, 1e-5, false),
            "from layer {layer}: {}",
            (&from - &full).abs().max()
        );
    }
}

#[test]
fn targets_and_depth_are_checked() {
    let config = LlamaConfig::tiny(50);
    let mut lora = LoraConfig {
        targets: vec!["gate".into(), "down".into()],
        ..LoraConfig::default()
    };
    assert!(LlamaLora::validate(&lora, &config).is_ok());
    lora.targets = vec!["dense".into()];
    assert!(LlamaLora::validate(&lora, &config).is_err());
    let too_deep = LlamaLora::for_top_layers(LoraConfig::default(), &config, 0);
    assert_eq!(too_deep.from_layer, 0);
    let beyond = LoraConfig {
        from_layer: 2,
        ..LoraConfig::default()
    };
    assert!(LlamaLora::validate(&beyond, &config).is_err());
}
