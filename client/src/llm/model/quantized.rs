//! Matrices kept in ggml's quantized blocks ([`QuantizedMatrix`]: `Q8_0`, `Q4_0`, `Q4_1`, the
//! layouts of [`crate::llm::quant`]) and dequantized with libtorch ops when used, and the
//! decoder's frozen weights, either such a matrix or `f32` ([`Weight`]).
//!
//! A matrix of `rows × cols` is held as two or three tensors of `blocks = cols / 32` blocks per
//! row:
//!
//! | type | `values` | `scales` (`d`) | `mins` (`m`) | value |
//! | --- | --- | --- | --- | --- |
//! | `Q8_0` | `i8 [rows, blocks, 32]` | `f16 [rows, blocks]` | | `q · d` |
//! | `Q4_0` | `u8 [rows, blocks, 16]`, two values a byte | `f16 [rows, blocks]` | | `(q − 8) · d` |
//! | `Q4_1` | `u8 [rows, blocks, 16]`, two values a byte | `f16 [rows, blocks]` | `f16 [rows, blocks]` | `q · d + m` |
//!
//! (a byte's low nibble is value `j` of its block, its high nibble value `j + 16`): the same
//! bytes as the file's blocks, split by field. The values are those
//! [`crate::llm::quant::dequantize`] gives, to the bit: the same `f32` operations in the same
//! order (for `Q4_0` an exact `q − 8` first). [`QuantizedMatrix::linear`] dequantizes a few rows
//! at a time ([`CHUNK_VALUES`]), so that no matrix, not even the tied head (the vocabulary's
//! embedding), exists whole in `f32`; a product over row chunks may round differently from one
//! over the whole matrix (the tests hold SmolLM2's logits to 1e-5 of the `f32` model's).

use tch::{Device, Kind, Tensor};

use crate::llm::quant::GgmlType;
use crate::llm::{Error, Result};

/// Most values dequantized at once by [`QuantizedMatrix::linear`] (1 MiB of `f32`: larger
/// chunks measured slower, and left more memory with the allocator).
pub const CHUNK_VALUES: i64 = 1 << 18;

/// Values in a block of the types held.
const BLOCK: i64 = 32;

/// A matrix kept in its quantized blocks (see the module docs).
#[derive(Debug)]
pub struct QuantizedMatrix {
    kind: GgmlType,
    rows: i64,
    cols: i64,
    values: Tensor,
    scales: Tensor,
    mins: Option<Tensor>,
}

impl QuantizedMatrix {
    /// Whether matrices of type `kind` can be kept quantized.
    pub fn holds(kind: GgmlType) -> bool {
        matches!(kind, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1)
    }

    /// The matrix `name` of `shape` (`[rows, cols]`) held in `bytes`, blocks of type `kind`
    /// (one of those [`Self::holds`]) row after row, as in a GGUF file.
    pub fn from_blocks(name: &str, kind: GgmlType, shape: [i64; 2], bytes: &[u8]) -> Result<Self> {
        let [rows, cols] = shape;
        if !Self::holds(kind) {
            return Err(Error::UnsupportedQuantization {
                tensor: name.to_owned(),
                kind: kind.to_string(),
            });
        }
        let blocks = cols / BLOCK;
        let block_bytes = kind.block_bytes() as i64;
        if rows < 1 || cols < 1 || cols % BLOCK != 0 {
            return Err(Error::tensor(
                name,
                format!("{kind} matrix {shape:?}: rows are not whole blocks of {BLOCK}"),
            ));
        }
        if bytes.len() as i64 != rows * blocks * block_bytes {
            return Err(Error::tensor(
                name,
                format!(
                    "{kind} matrix {shape:?} needs {} bytes, got {}",
                    rows * blocks * block_bytes,
                    bytes.len()
                ),
            ));
        }
        let raw = Tensor::f_from_data_size(bytes, &[rows, blocks, block_bytes], Kind::Uint8)?;
        // A field of each block: bytes `start..start + len`, as `kind` values.
        let field = |start: i64, len: i64, kind: Kind| {
            raw.narrow(2, start, len).contiguous().view_dtype(kind)
        };
        let half = |start: i64| field(start, 2, Kind::Half).squeeze_dim(2);
        let (values, mins) = match kind {
            GgmlType::Q8_0 => (field(2, BLOCK, Kind::Int8), None),
            GgmlType::Q4_0 => (field(2, BLOCK / 2, Kind::Uint8), None),
            _ => (field(4, BLOCK / 2, Kind::Uint8), Some(half(2))),
        };
        Ok(Self {
            kind,
            rows,
            cols,
            values,
            scales: half(0),
            mins,
        })
    }

    /// The type of the blocks.
    pub fn kind(&self) -> GgmlType {
        self.kind
    }

    /// `[rows, cols]`.
    pub fn shape(&self) -> [i64; 2] {
        [self.rows, self.cols]
    }

    /// Bytes held (those of the blocks).
    pub fn bytes(&self) -> i64 {
        self.parts()
            .map(|t| t.numel() as i64 * t.kind().elt_size_in_bytes() as i64)
            .sum()
    }

    fn parts(&self) -> impl Iterator<Item = &Tensor> {
        [&self.values, &self.scales].into_iter().chain(&self.mins)
    }

    /// The whole matrix, `f32 [rows, cols]`.
    pub fn dequantize(&self) -> Tensor {
        self.dequantize_parts(
            &self.values,
            &self.scales,
            self.mins.as_ref(),
            &[self.rows, self.cols],
        )
    }

    /// Rows `ids` (any shape, `i64`) of the matrix: `f32 [ids..., cols]`, as an embedding
    /// lookup.
    pub fn rows(&self, ids: &Tensor) -> Tensor {
        let flat = ids.flatten(0, -1);
        let pick = |t: &Tensor| t.index_select(0, &flat);
        let mut shape = ids.size();
        shape.push(self.cols);
        self.dequantize_parts(
            &pick(&self.values),
            &pick(&self.scales),
            self.mins.as_ref().map(pick).as_ref(),
            &shape,
        )
    }

    /// `x Wᵀ` (`x`: `[..., cols]`), the matrix dequantized [`CHUNK_VALUES`] values at a time.
    pub fn linear(&self, x: &Tensor) -> Tensor {
        let chunk = (CHUNK_VALUES / self.cols).max(1);
        if chunk >= self.rows {
            return x.linear(&self.dequantize(), None::<Tensor>);
        }
        let outputs: Vec<Tensor> = (0..self.rows)
            .step_by(chunk as usize)
            .map(|start| {
                let len = chunk.min(self.rows - start);
                let rows = |t: &Tensor| t.narrow(0, start, len);
                let w = self.dequantize_parts(
                    &rows(&self.values),
                    &rows(&self.scales),
                    self.mins.as_ref().map(rows).as_ref(),
                    &[len, self.cols],
                );
                x.linear(&w, None::<Tensor>)
            })
            .collect();
        Tensor::cat(&outputs, -1)
    }

    /// Values of the blocks `values` (`[n, blocks, ...]`) with their `scales` and `mins`, as
    /// `f32` of `shape`.
    fn dequantize_parts(
        &self,
        values: &Tensor,
        scales: &Tensor,
        mins: Option<&Tensor>,
        shape: &[i64],
    ) -> Tensor {
        // In place on one buffer: fresh buffers for each step cost more than the arithmetic.
        let d = scales.to_kind(Kind::Float).unsqueeze(-1);
        let mut w = match self.kind {
            GgmlType::Q8_0 => values.to_kind(Kind::Float),
            _ => {
                let low = values.bitwise_and(0x0f);
                let high = values.bitwise_right_shift_tensor_scalar(4);
                Tensor::cat(&[low, high], -1).to_kind(Kind::Float)
            }
        };
        match (self.kind, mins) {
            (GgmlType::Q4_0, _) => _ = w.g_sub_scalar_(8).g_mul_(&d),
            (_, Some(m)) => _ = w.g_mul_(&d).g_add_(&m.to_kind(Kind::Float).unsqueeze(-1)),
            (_, None) => _ = w.g_mul_(&d),
        }
        w.reshape(shape)
    }

    /// The matrix with its rows reordered by `f` (a function of a `[rows, k]` tensor that
    /// moves whole rows, such as [`super::unpermute_rotary_rows`]).
    pub fn map_rows(&self, f: impl Fn(&Tensor) -> Tensor) -> Self {
        let map = |t: &Tensor| f(&t.reshape([self.rows, -1])).reshape(t.size());
        Self {
            kind: self.kind,
            rows: self.rows,
            cols: self.cols,
            values: map(&self.values),
            scales: map(&self.scales),
            mins: self.mins.as_ref().map(map),
        }
    }

    /// The matrix on `device`.
    pub fn to_device(&self, device: Device) -> Self {
        Self {
            kind: self.kind,
            rows: self.rows,
            cols: self.cols,
            values: self.values.to_device(device),
            scales: self.scales.to_device(device),
            mins: self.mins.as_ref().map(|m| m.to_device(device)),
        }
    }
}

/// A frozen weight of the decoder: `f32`, or a matrix kept quantized.
#[derive(Debug)]
pub(crate) enum Weight {
    /// Dequantized (or read) as `f32`.
    F32(Tensor),
    /// Kept in its blocks.
    Quantized(QuantizedMatrix),
}

impl Weight {
    /// `x Wᵀ`.
    pub(crate) fn linear(&self, x: &Tensor) -> Tensor {
        match self {
            Weight::F32(w) => x.linear(w, None::<Tensor>),
            Weight::Quantized(q) => q.linear(x),
        }
    }

    /// The rows `ids` (an embedding lookup): `[ids..., cols]`.
    pub(crate) fn rows(&self, ids: &Tensor) -> Tensor {
        match self {
            Weight::F32(w) => Tensor::embedding(w, ids, -1, false, false),
            Weight::Quantized(q) => q.rows(ids),
        }
    }

    /// The weight as `f32`.
    pub(crate) fn to_f32(&self) -> Tensor {
        match self {
            Weight::F32(w) => w.shallow_clone(),
            Weight::Quantized(q) => q.dequantize(),
        }
    }

    /// Number of values.
    pub(crate) fn numel(&self) -> i64 {
        match self {
            Weight::F32(w) => w.numel() as i64,
            Weight::Quantized(q) => q.rows * q.cols,
        }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> i64 {
        match self {
            Weight::F32(w) => w.numel() as i64 * 4,
            Weight::Quantized(q) => q.bytes(),
        }
    }

    /// The weight with its rows reordered by `f` (see [`QuantizedMatrix::map_rows`]).
    pub(crate) fn map_rows(self, f: impl Fn(&Tensor) -> Tensor) -> Self {
        match self {
            Weight::F32(w) => Weight::F32(f(&w)),
            Weight::Quantized(q) => Weight::Quantized(q.map_rows(f)),
        }
    }
}

#[cfg(test)]
mod tests;
