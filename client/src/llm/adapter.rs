//! A trained adapter as a folder, laid out as PEFT lays one out: [`CONFIG_FILE`] (the LoRA
//! settings, the SHA-256 of the base model they were trained on and of the weights file) and
//! [`WEIGHTS_FILE`] (the adapters' tensors as one update blob, a safetensors file named as the
//! tensors travel: `blk.{i}.attn_q.lora_a`, ...; [`crate::llm::lora`]).
//!
//! The file names are PEFT's; the tensor names and the configuration's fields are bcfl's, so a
//! PEFT tool does not read the folder as its own. `bcfl fl simulate --save-adapter DIR` writes
//! one ([`Adapter::write`]) and `bcfl llm eval --adapter DIR` applies one ([`Adapter::read`],
//! [`Adapter::apply`]), refusing weights that are not the ones the configuration names and a
//! base model that is not the one they were trained on.
//!
//! ```no_run
//! use bcfl_client::llm::adapter::Adapter;
//! use bcfl_client::llm::LanguageModel;
//!
//! # fn main() -> Result<(), bcfl_client::llm::Error> {
//! let mut lm = LanguageModel::open("SmolLM2-135M-Instruct.Q4_1.gguf", tch::Device::Cpu)?;
//! let adapter = Adapter::read("run/adapter".as_ref())?;
//! adapter.apply(lm.model_mut(), "the GGUF file's SHA-256")?;
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::model::Llama;
use super::{Error, Result};
use crate::train::lora::LoraConfig;
use crate::train::tensors::StoreTensors as _;
use bcfl_fed::digest::sha256_hex;
use bcfl_fed::update::{Encoding, Update};

/// The adapter folder's description (PEFT's file name).
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The adapter folder's tensors (PEFT's file name).
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// [`CONFIG_FILE`]: what the adapters are and what they apply to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    /// Rank, scale, targets and first adapted layer.
    pub lora: LoraConfig,
    /// SHA-256 of the base model the adapters were trained on ([`crate::llm::model_sha256`]).
    pub base_sha256: String,
    /// SHA-256 of [`WEIGHTS_FILE`].
    pub weights_sha256: String,
    /// Trainable parameters.
    pub parameters: u64,
    /// How the adapters were made (free text, for people).
    pub description: String,
}

/// Adapters read from, or written to, a folder.
#[derive(Clone, Debug, PartialEq)]
pub struct Adapter {
    /// The description.
    pub config: AdapterConfig,
    /// The tensors.
    pub update: Update,
}

impl Adapter {
    /// Writes `update` (adapters of `lora` trained on the base whose SHA-256 is `base_sha256`)
    /// into `dir` (created if absent) as f32 tensors.
    pub fn write(
        dir: &Path,
        lora: &LoraConfig,
        base_sha256: &str,
        description: &str,
        update: &Update,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let bytes = update.to_bytes(Encoding::F32);
        let weights = dir.join(WEIGHTS_FILE);
        std::fs::write(&weights, &bytes).map_err(|e| Error::io(&weights, e))?;
        let config = AdapterConfig {
            lora: lora.clone(),
            base_sha256: base_sha256.to_owned(),
            weights_sha256: sha256_hex(&bytes),
            parameters: update.parameters() as u64,
            description: description.to_owned(),
        };
        let path = dir.join(CONFIG_FILE);
        let text = serde_json::to_string_pretty(&config)
            .map_err(|e| Error::adapter(dir, format!("encoding {CONFIG_FILE}: {e}")))?;
        std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))?;
        Ok(Self {
            config,
            update: update.clone(),
        })
    }

    /// Reads the folder `dir`, checking the weights against the configuration's SHA-256.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let config: AdapterConfig = serde_json::from_str(&text)
            .map_err(|e| Error::adapter(dir, format!("{CONFIG_FILE}: {e}")))?;
        let weights = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&weights).map_err(|e| Error::io(&weights, e))?;
        let sha = sha256_hex(&bytes);
        if sha != config.weights_sha256 {
            return Err(Error::adapter(
                dir,
                format!(
                    "{WEIGHTS_FILE} has SHA-256 {sha}, {CONFIG_FILE} says {}",
                    config.weights_sha256
                ),
            ));
        }
        let update = Update::from_bytes(&bytes)
            .map_err(|e| Error::adapter(dir, format!("{WEIGHTS_FILE}: {e}")))?;
        Ok(Self { config, update })
    }

    /// Puts these adapters on `model`, whose base file has SHA-256 `base_sha256` (refused
    /// unless it is the one they were trained on), replacing any it carries.
    pub fn apply(&self, model: &mut Llama, base_sha256: &str) -> Result<()> {
        if base_sha256 != self.config.base_sha256 {
            return Err(Error::Config(format!(
                "the adapters were trained on the base model {}, not on this one ({base_sha256})",
                self.config.base_sha256
            )));
        }
        model.attach_lora(self.config.lora.clone())?;
        let adapters = model.adapters().expect("just attached");
        self.update
            .apply_to(adapters.store())
            .map_err(|e| Error::Config(format!("the adapters do not fit the model: {e}")))
    }

    /// [`Adapter::apply`] with the SHA-256 of the base model at `base` (a GGUF file or a
    /// checkpoint directory: [`crate::llm::model_sha256`]) computed here.
    pub fn apply_to_file(&self, model: &mut Llama, base: &Path) -> Result<()> {
        self.apply(model, &super::model_sha256(base)?)
    }
}

#[cfg(test)]
mod tests {
    use tch::{Kind, Tensor};

    use super::*;
    use crate::llm::lora::LlamaLora;
    use crate::llm::model::tests::tiny;

    fn trained_tiny() -> (Llama, LoraConfig) {
        // Random adapters come from libtorch's process-global generator: hold it.
        let _generator = crate::train::seeded(2);
        let mut model = tiny();
        let lora = LlamaLora::for_top_layers(LlamaLora::flowertune(), model.config(), 1);
        model.attach_lora(lora.clone()).unwrap();
        tch::no_grad(|| {
            for (_, mut var) in model.adapters().unwrap().store().variables() {
                var.copy_(&(Tensor::randn(var.size(), (Kind::Float, tch::Device::Cpu)) * 0.1));
            }
        });
        (model, lora)
    }

    fn logits(model: &Llama) -> Tensor {
        let ids = Tensor::from_slice(&[1i64, 5, 9, 3, 7]).unsqueeze(0);
        tch::no_grad(|| model.forward(&ids, None).unwrap())
    }

    #[test]
    fn a_written_adapter_reads_back_and_gives_the_same_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let (model, lora) = trained_tiny();
        let update = Update::from_store(model.adapters().unwrap().store()).unwrap();
        let written = Adapter::write(dir.path(), &lora, "base-sha", "test", &update).unwrap();
        let read = Adapter::read(dir.path()).unwrap();
        assert_eq!(read, written);
        assert_eq!(read.config.parameters, update.parameters() as u64);

        let mut fresh = tiny();
        let before = logits(&fresh);
        read.apply(&mut fresh, "base-sha").unwrap();
        let after = logits(&fresh);
        assert!(after.allclose(&logits(&model), 1e-6, 1e-6, false));
        assert!(
            !after.allclose(&before, 1e-3, 1e-3, false),
            "the adapters change the output"
        );
    }

    #[test]
    fn a_changed_weights_file_another_base_or_a_missing_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (model, lora) = trained_tiny();
        let update = Update::from_store(model.adapters().unwrap().store()).unwrap();
        Adapter::write(dir.path(), &lora, "base-sha", "test", &update).unwrap();

        let adapter = Adapter::read(dir.path()).unwrap();
        let err = adapter.apply(&mut tiny(), "another").unwrap_err();
        assert!(
            err.to_string()
                .contains("trained on the base model base-sha"),
            "{err}"
        );

        // Adapters of another shape do not fit.
        let mut wider = adapter.clone();
        wider.config.lora.rank = 8;
        let err = wider.apply(&mut tiny(), "base-sha").unwrap_err();
        assert!(err.to_string().contains("do not fit"), "{err}");

        let weights = dir.path().join(WEIGHTS_FILE);
        let mut bytes = std::fs::read(&weights).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&weights, &bytes).unwrap();
        let err = Adapter::read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("SHA-256"), "{err}");

        std::fs::remove_file(&weights).unwrap();
        let err = Adapter::read(dir.path()).unwrap_err();
        assert!(err.to_string().contains(WEIGHTS_FILE), "{err}");
        std::fs::write(dir.path().join(CONFIG_FILE), "{").unwrap();
        let err = Adapter::read(dir.path()).unwrap_err();
        assert!(err.to_string().contains(CONFIG_FILE), "{err}");
    }
}
