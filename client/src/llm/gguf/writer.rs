//! A minimal GGUF writer for tests: metadata of every type and tensors of any ggml type given
//! as raw bytes.

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
