//! A minimal GGUF writer for tests: metadata of every type and tensors of any ggml type given
//! as raw bytes, and llama.cpp's reference quantizers ([`quantize`]) to make them.

use super::{TensorInfo, Value, DEFAULT_ALIGNMENT, MAGIC};
use crate::llm::quant::GgmlType;

/// Builds a GGUF file in memory.
#[derive(Default)]
pub(crate) struct GgufWriter {
    version: u32,
    metadata: Vec<(String, Value)>,
    tensors: Vec<(String, Vec<u64>, GgmlType, Vec<u8>)>,
}

impl GgufWriter {
    pub(crate) fn new(version: u32) -> Self {
        Self {
            version,
            ..Self::default()
        }
    }

    pub(crate) fn metadata(mut self, key: &str, value: Value) -> Self {
        self.metadata.push((key.to_owned(), value));
        self
    }

    /// Adds a tensor; `dims` innermost first.
    pub(crate) fn tensor(
        mut self,
        name: &str,
        dims: &[u64],
        kind: GgmlType,
        data: Vec<u8>,
    ) -> Self {
        self.tensors
            .push((name.to_owned(), dims.to_vec(), kind, data));
        self
    }

    /// Adds an F32 tensor; `dims` innermost first.
    pub(crate) fn f32_tensor(self, name: &str, dims: &[u64], values: &[f32]) -> Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, dims, GgmlType::F32, data)
    }

    pub(crate) fn build(self) -> (Vec<u8>, Vec<TensorInfo>) {
        let alignment = self
            .metadata
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .and_then(|(_, v)| v.as_u64())
            .unwrap_or(DEFAULT_ALIGNMENT) as usize;
        let mut out = MAGIC.to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_string(&mut out, key);
            out.extend(value.type_id().to_le_bytes());
            put_value(&mut out, value);
        }
        let mut infos = Vec::new();
        let mut offset = 0usize;
        for (name, dims, kind, data) in &self.tensors {
            put_string(&mut out, name);
            out.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(kind.id().to_le_bytes());
            out.extend((offset as u64).to_le_bytes());
            infos.push(TensorInfo {
                name: name.clone(),
                dims: dims.clone(),
                kind: *kind,
                offset: offset as u64,
            });
            offset = (offset + data.len()).div_ceil(alignment) * alignment;
        }
        for (_, _, _, data) in &self.tensors {
            out.resize(out.len().div_ceil(alignment) * alignment, 0);
            out.extend(data);
        }
        (out, infos)
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::U8(v) => out.push(*v),
        Value::I8(v) => out.push(*v as u8),
        Value::U16(v) => out.extend(v.to_le_bytes()),
        Value::I16(v) => out.extend(v.to_le_bytes()),
        Value::U32(v) => out.extend(v.to_le_bytes()),
        Value::I32(v) => out.extend(v.to_le_bytes()),
        Value::F32(v) => out.extend(v.to_le_bytes()),
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::String(s) => put_string(out, s),
        Value::Array(items) => {
            let element_type = items.first().map_or(0, Value::type_id);
            out.extend(element_type.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item);
            }
        }
        Value::U64(v) => out.extend(v.to_le_bytes()),
        Value::I64(v) => out.extend(v.to_le_bytes()),
        Value::F64(v) => out.extend(v.to_le_bytes()),
    }
}

/// `values` (whole blocks of 32 for the quantized types) stored as `kind` (`F32`, `Q8_0`,
/// `Q4_0` or `Q4_1`), as llama.cpp's `quantize_row_*_reference` does (scales truncated to f16).
pub(crate) fn quantize(kind: GgmlType, values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    if kind == GgmlType::F32 {
        out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        return out;
    }
    assert_eq!(values.len() % 32, 0, "whole blocks");
    let inverse = |d: f32| if d == 0.0 { 0.0 } else { 1.0 / d };
    for block in values.chunks_exact(32) {
        match kind {
            GgmlType::Q8_0 => {
                let d = block.iter().fold(0f32, |a, x| a.max(x.abs())) / 127.0;
                out.extend(f16_bits(d).to_le_bytes());
                out.extend(block.iter().map(|x| (x * inverse(d)).round() as i8 as u8));
            }
            GgmlType::Q4_0 => {
                let max = block
                    .iter()
                    .fold(0f32, |a, &x| if x.abs() > a.abs() { x } else { a });
                let d = max / -8.0;
                let q = |x: f32| ((x * inverse(d) + 8.5) as u8).min(15);
                out.extend(f16_bits(d).to_le_bytes());
                out.extend((0..16).map(|j| q(block[j]) | q(block[j + 16]) << 4));
            }
            GgmlType::Q4_1 => {
                let min = block.iter().copied().fold(f32::INFINITY, f32::min);
                let max = block.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let d = (max - min) / 15.0;
                let q = |x: f32| (((x - min) * inverse(d) + 0.5) as u8).min(15);
                out.extend(f16_bits(d).to_le_bytes());
                out.extend(f16_bits(min).to_le_bytes());
                out.extend((0..16).map(|j| q(block[j]) | q(block[j + 16]) << 4));
            }
            other => panic!("no quantizer for {other}"),
        }
    }
    out
}

/// The f16 bits of `x` (zero or a normal f16), the mantissa truncated.
fn f16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    if x == 0.0 {
        return sign;
    }
    let exponent = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    assert!((1..31).contains(&exponent), "{x} is not a normal f16");
    sign | (exponent as u16) << 10 | ((bits >> 13) & 0x3ff) as u16
}
