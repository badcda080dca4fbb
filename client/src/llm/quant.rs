//! ggml tensor types and their dequantization to `f32`.
//!
//! A ggml tensor is stored row by row; quantized types cut each row into blocks of 32 values
//! that share a scale (layouts from llama.cpp's `ggml-common.h` and `ggml-quants.c`):
//!
//! | type | block bytes | layout | value |
//! | --- | --- | --- | --- |
//! | `Q8_0` | 34 | f16 `d`, 32 × i8 `q` | `q · d` |
//! | `Q4_0` | 18 | f16 `d`, 16 bytes: low nibbles are values 0..15, high nibbles 16..31 | `(q − 8) · d` |
//! | `Q4_1` | 20 | f16 `d`, f16 `m`, 16 bytes as in `Q4_0` | `q · d + m` |
//!
//! `F32`, `F16` and `BF16` are plain little-endian arrays. The other types are known (so that a
//! file holding them can be read and its tensors sized) but not dequantized. The decoder can
//! also keep `Q8_0`, `Q4_0` and `Q4_1` matrices in these blocks and dequantize them with
//! libtorch ops when used ([`crate::llm::model::QuantizedMatrix`]).
//!
//! ```
//! use bcfl_client::llm::quant::{dequantize, GgmlType};
//!
//! // One Q8_0 block: scale 0.5 (f16 0x3800), then 32 signed bytes.
//! let mut block = vec![0x00, 0x38];
//! block.extend((0..32).map(|i| (i as i8 - 16) as u8));
//! let values = dequantize(GgmlType::Q8_0, &block, 32).unwrap();
//! assert_eq!(values[0], -8.0);
//! assert_eq!(values[31], 7.5);
//! ```

use std::fmt;

/// A ggml tensor type, by its id in the GGUF file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// 4-bit, scale only.
    Q4_0,
    /// 4-bit, scale and minimum.
    Q4_1,
    /// 5-bit, scale only.
    Q5_0,
    /// 5-bit, scale and minimum.
    Q5_1,
    /// 8-bit, scale only.
    Q8_0,
    /// 8-bit, scale and sum.
    Q8_1,
    /// k-quant, 2-bit.
    Q2_K,
    /// k-quant, 3-bit.
    Q3_K,
    /// k-quant, 4-bit.
    Q4_K,
    /// k-quant, 5-bit.
    Q5_K,
    /// k-quant, 6-bit.
    Q6_K,
    /// k-quant, 8-bit.
    Q8_K,
    /// 8-bit integer.
    I8,
    /// 16-bit integer.
    I16,
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 64-bit float.
    F64,
    /// bfloat16.
    BF16,
}

impl GgmlType {
    /// The type of ggml id `id`, if this reader knows it.
    pub fn from_id(id: u32) -> Option<Self> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            30 => BF16,
            _ => return None,
        })
    }

    /// The ggml id.
    pub fn id(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2_K => 10,
            Q3_K => 11,
            Q4_K => 12,
            Q5_K => 13,
            Q6_K => 14,
            Q8_K => 15,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            BF16 => 30,
        }
    }

    /// Values per block (1 for plain types).
    pub fn block_size(self) -> u64 {
        use GgmlType::*;
        match self {
            F32 | F16 | I8 | I16 | I32 | I64 | F64 | BF16 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 => 32,
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> u64 {
        use GgmlType::*;
        match self {
            F32 | I32 => 4,
            F16 | BF16 | I16 => 2,
            I8 => 1,
            I64 | F64 => 8,
            Q4_0 => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            Q8_1 => 36,
            Q2_K => 84,
            Q3_K => 110,
            Q4_K => 144,
            Q5_K => 176,
            Q6_K => 210,
            Q8_K => 292,
        }
    }

    /// Bytes taken by `count` values, or `None` if `count` is not a whole number of blocks (or
    /// overflows).
    pub fn bytes_for(self, count: u64) -> Option<u64> {
        if count % self.block_size() != 0 {
            return None;
        }
        (count / self.block_size()).checked_mul(self.block_bytes())
    }

    /// Whether [`dequantize`] supports the type.
    pub fn is_dequantizable(self) -> bool {
        use GgmlType::*;
        matches!(self, F32 | F16 | BF16 | Q8_0 | Q4_0 | Q4_1)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why [`dequantize`] refused its input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DequantizeError {
    /// The type is known but not supported here.
    #[error("{0} cannot be dequantized")]
    Unsupported(GgmlType),
    /// The byte count does not match the value count.
    #[error("{kind}: {count} values need {expected:?} bytes, got {actual}")]
    Size {
        /// The type.
        kind: GgmlType,
        /// The values asked for.
        count: u64,
        /// The bytes they take (`None`: not a whole number of blocks).
        expected: Option<u64>,
        /// The bytes given.
        actual: usize,
    },
}

/// The `count` values of type `kind` held in `bytes`, as `f32`.
pub fn dequantize(kind: GgmlType, bytes: &[u8], count: u64) -> Result<Vec<f32>, DequantizeError> {
    if !kind.is_dequantizable() {
        return Err(DequantizeError::Unsupported(kind));
    }
    let expected = kind.bytes_for(count);
    if expected != Some(bytes.len() as u64) {
        return Err(DequantizeError::Size {
            kind,
            count,
            expected,
            actual: bytes.len(),
        });
    }
    let mut out = Vec::with_capacity(count as usize);
    match kind {
        GgmlType::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        GgmlType::F16 => out.extend(bytes.chunks_exact(2).map(|b| f16_le(b[0], b[1]))),
        GgmlType::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)),
        ),
        GgmlType::Q8_0 => {
            for block in bytes.chunks_exact(34) {
                let d = f16_le(block[0], block[1]);
                out.extend(block[2..].iter().map(|&q| f32::from(q as i8) * d));
            }
        }
        GgmlType::Q4_0 => {
            for block in bytes.chunks_exact(18) {
                let d = f16_le(block[0], block[1]);
                let qs = &block[2..];
                out.extend(qs.iter().map(|&q| (f32::from(q & 0x0f) - 8.0) * d));
                out.extend(qs.iter().map(|&q| (f32::from(q >> 4) - 8.0) * d));
            }
        }
        GgmlType::Q4_1 => {
            for block in bytes.chunks_exact(20) {
                let d = f16_le(block[0], block[1]);
                let m = f16_le(block[2], block[3]);
                let qs = &block[4..];
                out.extend(qs.iter().map(|&q| f32::from(q & 0x0f) * d + m));
                out.extend(qs.iter().map(|&q| f32::from(q >> 4) * d + m));
            }
        }
        _ => unreachable!("is_dequantizable covers the types handled above"),
    }
    Ok(out)
}

fn f16_le(lo: u8, hi: u8) -> f32 {
    f16_to_f32(u16::from_le_bytes([lo, hi]))
}

/// An IEEE 754 half (as its bits) widened to `f32`, exactly (subnormals, infinities, NaN).
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let magnitude = match (exponent, mantissa) {
        (0, 0) => 0,
        // Subnormal: mantissa · 2^-24, exact in f32.
        (0, m) => (m as f32 * f32::powi(2.0, -24)).to_bits(),
        (0x1f, m) => 0x7f80_0000 | (m << 13),
        (e, m) => ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(sign | magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_known_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3800), 0.5);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), f32::powi(2.0, -24));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn ids_round_trip() {
        for id in 0..64 {
            if let Some(kind) = GgmlType::from_id(id) {
                assert_eq!(kind.id(), id);
            }
        }
    }

    #[test]
    fn q8_0_block() {
        // d = 0.25 (0x3400); q = -128, -1, 0, 1, 127, then zeros.
        let mut block = vec![0x00, 0x34, 0x80, 0xff, 0x00, 0x01, 0x7f];
        block.resize(34, 0);
        let v = dequantize(GgmlType::Q8_0, &block, 32).unwrap();
        assert_eq!(&v[..5], &[-32.0, -0.25, 0.0, 0.25, 31.75]);
        assert!(v[5..].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn q4_0_block() {
        // d = 2.0 (0x4000); byte i holds element i (low nibble) and i + 16 (high nibble).
        let mut block = vec![0x00, 0x40];
        block.extend((0..16u8).map(|i| (15 - i) << 4 | i));
        let v = dequantize(GgmlType::Q4_0, &block, 32).unwrap();
        for i in 0..16 {
            assert_eq!(v[i], (i as f32 - 8.0) * 2.0, "element {i}");
            assert_eq!(
                v[i + 16],
                ((15 - i) as f32 - 8.0) * 2.0,
                "element {}",
                i + 16
            );
        }
    }

    #[test]
    fn q4_1_block() {
        // d = 0.5 (0x3800), m = -1.0 (0xbc00).
        let mut block = vec![0x00, 0x38, 0x00, 0xbc];
        block.extend((0..16u8).map(|i| (15 - i) << 4 | i));
        let v = dequantize(GgmlType::Q4_1, &block, 32).unwrap();
        for i in 0..16 {
            assert_eq!(v[i], i as f32 * 0.5 - 1.0, "element {i}");
            assert_eq!(v[i + 16], (15 - i) as f32 * 0.5 - 1.0);
        }
    }

    #[test]
    fn plain_types() {
        let f32s: Vec<u8> = [1.5f32, -3.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(dequantize(GgmlType::F32, &f32s, 2).unwrap(), [1.5, -3.0]);
        let f16s = [0x00, 0x3c, 0x00, 0xc0];
        assert_eq!(dequantize(GgmlType::F16, &f16s, 2).unwrap(), [1.0, -2.0]);
        let bf16s = [0xc0, 0x3f];
        assert_eq!(dequantize(GgmlType::BF16, &bf16s, 1).unwrap(), [1.5]);
    }

    #[test]
    fn refuses_bad_sizes_and_types() {
        assert!(matches!(
            dequantize(GgmlType::Q4_0, &[0; 18], 31),
            Err(DequantizeError::Size { expected: None, .. })
        ));
        assert!(matches!(
            dequantize(GgmlType::Q4_0, &[0; 17], 32),
            Err(DequantizeError::Size { .. })
        ));
        assert_eq!(
            dequantize(GgmlType::Q4_K, &[0; 144], 256),
            Err(DequantizeError::Unsupported(GgmlType::Q4_K))
        );
    }
}
