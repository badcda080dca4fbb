//! A model's trainable tensors as an [`Update`] and back: the one place where the federated
//! core's update format ([`bcfl_fed::update`]) meets libtorch.
//!
//! ```no_run
//! use bcfl_client::train::tensors::StoreTensors as _;
//! use bcfl_fed::update::Update;
//!
//! # fn run(store: &tch::nn::VarStore) -> bcfl_client::train::Result<()> {
//! let update = Update::from_store(store)?;
//! update.apply_to(store)?;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;

use bcfl_fed::update::Update;
use tch::{nn, Device, Kind, Tensor};

use super::{Error, Result};

/// Copying an [`Update`] out of and into a `tch` variable store.
pub trait StoreTensors: Sized {
    /// Copies the variables of a store (the model's trainable tensors).
    fn from_store(store: &nn::VarStore) -> Result<Self>;

    /// Writes the tensors into a store with the same names and shapes.
    fn apply_to(&self, store: &nn::VarStore) -> Result<()>;
}

impl StoreTensors for Update {
    /// Copies the variables of a store (the model's trainable tensors).
    fn from_store(store: &nn::VarStore) -> Result<Self> {
        let mut tensors = BTreeMap::new();
        for (name, var) in store.variables() {
            let flat = var
                .detach()
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
                .contiguous()
                .view([-1]);
            let shape = var.size().iter().map(|&d| d as usize).collect();
            tensors.insert(name, (shape, Vec::<f32>::try_from(&flat)?));
        }
        Ok(Self { tensors })
    }

    /// Writes the tensors into a store with the same names and shapes.
    fn apply_to(&self, store: &nn::VarStore) -> Result<()> {
        let vars = store.variables();
        if vars.len() != self.tensors.len() {
            return Err(Error::Update(format!(
                "{} tensors in the update, {} in the model",
                self.tensors.len(),
                vars.len()
            )));
        }
        tch::no_grad(|| {
            for (name, (shape, values)) in &self.tensors {
                let var = vars
                    .get(name)
                    .ok_or_else(|| Error::Update(format!("the model has no tensor {name}")))?;
                let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
                if var.size() != dims {
                    return Err(Error::Update(format!(
                        "{name}: shape {dims:?}, model {:?}",
                        var.size()
                    )));
                }
                let mut var = var.shallow_clone();
                var.copy_(
                    &Tensor::from_slice(values)
                        .view(dims.as_slice())
                        .to_device(var.device()),
                );
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use bcfl_fed::update::Encoding;

    use super::*;

    #[test]
    fn libtorch_reads_update_files_and_stores_round_trip() {
        let mut tensors = BTreeMap::new();
        tensors.insert(
            "b.lora_b".to_string(),
            (vec![2, 2], vec![0.5, -1.0, 0.0, 2.0]),
        );
        tensors.insert("a.lora_a".to_string(), (vec![3], vec![1.0, -0.25, 0.125]));
        let update = Update { tensors };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.safetensors");
        std::fs::write(&path, update.to_bytes(Encoding::F32)).unwrap();
        let read: BTreeMap<String, Tensor> = Tensor::read_safetensors(&path)
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(read.keys().collect::<Vec<_>>(), ["a.lora_a", "b.lora_b"]);
        assert_eq!(
            Vec::<f32>::try_from(&read["a.lora_a"]).unwrap(),
            [1.0, -0.25, 0.125]
        );

        let store = nn::VarStore::new(Device::Cpu);
        let root = store.root();
        let _a = (&root / "a").zeros("lora_a", &[3]);
        let _b = (&root / "b").zeros("lora_b", &[2, 2]);
        update.apply_to(&store).unwrap();
        assert_eq!(Update::from_store(&store).unwrap(), update);
        let mut wrong = update.clone();
        wrong.tensors.insert("c".to_string(), (vec![1], vec![0.0]));
        assert!(wrong.apply_to(&store).is_err());
    }
}
