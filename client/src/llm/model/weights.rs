//! Where the decoder's weights come from ([`LlamaWeights`]) and the two row orders of its query
//! and key weights ([`RotaryRows`]).
//!
//! Every source names its tensors by their GGUF names (`token_embd.weight`,
//! `blk.3.attn_q.weight`, ...): they are the model's internal names, whatever the file calls
//! them. A GGUF file ([`GgufFile`]) keeps llama.cpp's row order of the query and key weights; a
//! Hugging Face checkpoint ([`crate::llm::hf`]) keeps its own. The source says which
//! ([`LlamaWeights::rotary_rows`]) and [`Llama::load`](super::Llama::load) brings the rows to
//! Hugging Face's order, the one the decoder computes with, so that no source has to permute
//! rows only for the loader to permute them back.
//!
//! [`WeightStorage`] says how the loader holds what it reads: all in `f32`, or the matrices
//! that the source holds in `Q8_0`, `Q4_0` or `Q4_1` ([`LlamaWeights::quantized`]) kept in their
//! blocks ([`QuantizedMatrix`]) and dequantized when used.

use tch::Tensor;

use super::quantized::QuantizedMatrix;
use crate::llm::gguf::GgufFile;
use crate::llm::Result;

/// How [`Llama::load`](super::Llama::load) holds the frozen weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WeightStorage {
    /// Every weight dequantized to `f32` once, at load.
    #[default]
    F32,
    /// The matrices the source holds as `Q8_0`, `Q4_0` or `Q4_1` kept in their blocks (about
    /// 1/6 of the `f32` bytes for `Q4_1`) and dequantized in every forward pass as each is used,
    /// [`CHUNK_VALUES`](super::CHUNK_VALUES) values at a time; norms and floating-point
    /// matrices in `f32`. The outputs are the [`Self::F32`] model's, up to the rounding of the
    /// products (1e-5 in the tests).
    Quantized,
}

/// The row order of a query or key weight (`[heads · head_dim, dim]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotaryRows {
    /// llama.cpp's: each head's rotated pairs are adjacent rows (its converter's `permute`).
    Gguf,
    /// Hugging Face's: each head's pairs are rows `i` and `i + head_dim / 2` (`rotate_half`).
    HuggingFace,
}

/// Where a model's named weights come from.
pub trait LlamaWeights {
    /// The tensor `name` (a GGUF name: `token_embd.weight`, `blk.3.attn_q.weight`, ...) as
    /// `f32`, row-major, with the query and key rows in [`Self::rotary_rows`] order; `None` if
    /// absent.
    fn tensor(&self, name: &str) -> Result<Option<Tensor>>;

    /// The row order of the query and key weights [`Self::tensor`] returns.
    fn rotary_rows(&self) -> RotaryRows {
        RotaryRows::Gguf
    }

    /// How the source names the tensor `name`, for error messages.
    fn source_name(&self, name: &str) -> String {
        name.to_owned()
    }

    /// The matrix `name` in its quantized blocks, rows in [`Self::rotary_rows`] order, when
    /// the source holds it in a type [`QuantizedMatrix`] keeps; `None` otherwise (the default),
    /// and the loader reads it with [`Self::tensor`].
    fn quantized(&self, name: &str) -> Result<Option<QuantizedMatrix>> {
        let _ = name;
        Ok(None)
    }
}

impl LlamaWeights for GgufFile {
    fn tensor(&self, name: &str) -> Result<Option<Tensor>> {
        let Some(info) = GgufFile::tensor(self, name) else {
            return Ok(None);
        };
        let shape = info.shape();
        let values = self.dequantize(name)?;
        Ok(Some(Tensor::from_slice(&values).reshape(shape)))
    }

    fn quantized(&self, name: &str) -> Result<Option<QuantizedMatrix>> {
        let Some(info) = GgufFile::tensor(self, name) else {
            return Ok(None);
        };
        let shape = match info.shape()[..] {
            [rows, cols] if QuantizedMatrix::holds(info.kind) => [rows, cols],
            _ => return Ok(None),
        };
        let (info, bytes) = self.tensor_bytes(name)?;
        QuantizedMatrix::from_blocks(name, info.kind, shape, bytes).map(Some)
    }
}

/// llama.cpp's row order of a query or key weight (`[heads · head_dim, dim]`) back to Hugging
/// Face's, for `heads` heads.
pub fn unpermute_rotary_rows(w: &Tensor, heads: i64) -> Tensor {
    let (rows, dim) = w.size2().expect("a matrix");
    w.reshape([heads, rows / heads / 2, 2, dim])
        .transpose(1, 2)
        .reshape([rows, dim])
}

/// Hugging Face's row order of a query or key weight to llama.cpp's (the converter's
/// `permute`): the inverse of [`unpermute_rotary_rows`].
pub fn permute_rotary_rows(w: &Tensor, heads: i64) -> Tensor {
    let (rows, dim) = w.size2().expect("a matrix");
    w.reshape([heads, 2, rows / heads / 2, dim])
        .transpose(1, 2)
        .reshape([rows, dim])
}
