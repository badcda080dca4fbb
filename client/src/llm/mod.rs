//! Decoder language models of the Llama architecture, read from llama.cpp's GGUF files and run
//! with libtorch: the foundation for federated fine-tuning of a language model (issue #15).
//!
//! - [`gguf`] reads a GGUF file (header, metadata, tensor infos, memory-mapped data) and
//!   [`quant`] dequantizes its tensors (F32, F16, BF16, Q8_0, Q4_0, Q4_1) to `f32`.

mod error;
pub mod gguf;
pub mod quant;

pub use error::{Error, Result};
