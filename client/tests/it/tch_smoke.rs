//! Smoke test of the libtorch wiring behind the `train` feature.
//!
//! It proves three things that fine-tuning relies on, with real libtorch and no Python:
//! - the test binary starts without `LD_LIBRARY_PATH` (the rpath from `client/build.rs`);
//! - a few AdamW steps on a small MLP reduce the loss of a separable synthetic task by a clear
//!   margin and move every parameter;
//! - a `VarStore` saved as safetensors loads back bit for bit, under the same variable names.
#![cfg(feature = "train")]

use std::collections::BTreeMap;
use std::sync::MutexGuard;

use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

const FEATURES: i64 = 8;
const HIDDEN: i64 = 16;
const CLASSES: i64 = 2;
const SAMPLES: i64 = 256;
const STEPS: usize = 60;

/// libtorch's default generator is process-global: tests that seed it run one at a time, so
/// that each sees the numbers its seed gives. The lock is the library's, which the other
/// libtorch tests of this binary (`train_engine`, `train_minilm`) take too.
fn seeded(seed: i64) -> MutexGuard<'static, ()> {
    bcfl_client::train::seeded(u64::try_from(seed).expect("a non-negative seed"))
}

/// A two-layer MLP whose variables are named `fc1.*` and `fc2.*`.
fn mlp(root: nn::Path<'_>) -> impl Module {
    nn::seq()
        .add(nn::linear(
            &root / "fc1",
            FEATURES,
            HIDDEN,
            Default::default(),
        ))
        .add_fn(|x| x.relu())
        .add(nn::linear(
            &root / "fc2",
            HIDDEN,
            CLASSES,
            Default::default(),
        ))
}

/// Points from a fixed-seed Gaussian, labelled by the side of a fixed hyperplane they fall on.
fn separable_data() -> (Tensor, Tensor) {
    let x = Tensor::randn([SAMPLES, FEATURES], (Kind::Float, Device::Cpu));
    let direction = Tensor::linspace(-1.0, 1.0, FEATURES, (Kind::Float, Device::Cpu));
    let y = x.matmul(&direction).gt(0.0).to_kind(Kind::Int64);
    (x, y)
}

fn scalar(t: &Tensor) -> f64 {
    f64::try_from(t).expect("a scalar tensor")
}

fn snapshot(vs: &nn::VarStore) -> BTreeMap<String, Tensor> {
    vs.variables()
        .into_iter()
        .map(|(name, t)| (name, t.detach().copy()))
        .collect()
}

#[test]
fn adamw_steps_reduce_the_loss_and_move_every_parameter() {
    let _generator = seeded(7);
    let (x, y) = separable_data();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = mlp(vs.root());
    let before = snapshot(&vs);
    assert_eq!(
        before.len(),
        4,
        "two linear layers, each with weight and bias"
    );

    let mut opt = nn::AdamW::default().build(&vs, 1e-2).unwrap();
    let initial_loss = scalar(&model.forward(&x).cross_entropy_for_logits(&y));
    for _ in 0..STEPS {
        let loss = model.forward(&x).cross_entropy_for_logits(&y);
        opt.backward_step(&loss);
    }
    let (final_loss, accuracy) = tch::no_grad(|| {
        let logits = model.forward(&x);
        (
            scalar(&logits.cross_entropy_for_logits(&y)),
            scalar(&logits.accuracy_for_logits(&y)),
        )
    });

    eprintln!(
        "{STEPS} AdamW steps: loss {initial_loss:.4} -> {final_loss:.4}, accuracy {accuracy:.3}"
    );
    assert!(initial_loss.is_finite() && final_loss.is_finite());
    assert!(
        final_loss < 0.5 * initial_loss,
        "loss went from {initial_loss:.4} to {final_loss:.4}: expected at least a halving"
    );
    assert!(accuracy > 0.9, "training accuracy {accuracy:.3}");
    for (name, after) in snapshot(&vs) {
        let change = scalar(&(&after - &before[&name]).abs().max());
        assert!(
            change > 1e-4,
            "parameter {name} did not move (max change {change:e})"
        );
    }
}

#[test]
fn varstore_safetensors_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.safetensors");

    let _generator = seeded(11);
    let saved = nn::VarStore::new(Device::Cpu);
    let saved_model = mlp(saved.root());
    saved.save(&path).unwrap();

    // The file is safetensors with exactly the store's variable names.
    let on_disk: BTreeMap<String, Tensor> = Tensor::read_safetensors(&path)
        .unwrap()
        .into_iter()
        .collect();
    let names: Vec<&String> = on_disk.keys().collect();
    assert_eq!(names, ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]);

    // A store initialised from another seed differs until it loads the file.
    tch::manual_seed(12);
    let mut loaded = nn::VarStore::new(Device::Cpu);
    let loaded_model = mlp(loaded.root());
    let probe = Tensor::randn([4, FEATURES], (Kind::Float, Device::Cpu));
    assert!(!saved_model
        .forward(&probe)
        .equal(&loaded_model.forward(&probe)));

    loaded.load(&path).unwrap();
    let original = snapshot(&saved);
    for (name, value) in snapshot(&loaded) {
        assert!(
            value.equal(&original[&name]),
            "{name} changed in the round trip"
        );
        assert!(value.equal(&on_disk[&name]), "{name} differs from the file");
    }
    assert!(saved_model
        .forward(&probe)
        .equal(&loaded_model.forward(&probe)));
}
