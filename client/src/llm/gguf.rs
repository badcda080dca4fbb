//! A reader of GGUF files, llama.cpp's single-file model format (spec: llama.cpp
//! `docs/gguf.md`), versions 2 and 3.
//!
//! A file is a header (magic `GGUF`, version, tensor count, metadata count), metadata key/value
//! pairs, tensor infos (name, dimensions, ggml type, offset), padding to the alignment
//! (`general.alignment`, default 32), then the tensor data. All integers are little-endian.
//! Dimensions are listed innermost first: a matrix of `rows × cols` in row-major order is
//! `[cols, rows]` here ([`TensorInfo::shape`] gives the row-major order).
//!
//! The file is memory-mapped; every length and offset read from it is checked against its size,
//! so a truncated or hostile file is an [`Error`], never a panic or a huge allocation.
//!
//! ```no_run
//! use bcfl_client::llm::gguf::GgufFile;
//!
//! # fn main() -> Result<(), bcfl_client::llm::Error> {
//! let file = GgufFile::open("model.gguf")?;
//! println!("{:?}", file.metadata("general.architecture"));
//! for tensor in file.tensors() {
//!     println!("{} {:?} {}", tensor.name, tensor.shape(), tensor.kind);
//! }
//! let embeddings: Vec<f32> = file.dequantize("token_embd.weight")?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use super::quant::{self, DequantizeError, GgmlType};
use super::{Error, Result};

/// The four bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Deepest nesting of arrays accepted in metadata.
const MAX_ARRAY_DEPTH: usize = 8;
/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
const MAX_DIMS: u32 = 4;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Type 0.
    U8(u8),
    /// Type 1.
    I8(i8),
    /// Type 2.
    U16(u16),
    /// Type 3.
    I16(i16),
    /// Type 4.
    U32(u32),
    /// Type 5.
    I32(i32),
    /// Type 6.
    F32(f32),
    /// Type 7.
    Bool(bool),
    /// Type 8: UTF-8, length-prefixed.
    String(String),
    /// Type 9: element type, length, elements (all of the element type).
    Array(Vec<Value>),
    /// Type 10.
    U64(u64),
    /// Type 11.
    I64(i64),
    /// Type 12.
    F64(f64),
}

impl Value {
    /// The value as a non-negative integer, whatever its integer type.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a signed integer, whatever its integer type.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// The value as a float (either float type).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The GGUF type id of the value.
    pub fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::String(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }
}

/// Where a tensor lies in the file and what it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// The tensor's name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions, innermost first (GGUF order).
    pub dims: Vec<u64>,
    /// The element type.
    pub kind: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// The dimensions in row-major order (outermost first), as libtorch expects them.
    pub fn shape(&self) -> Vec<i64> {
        self.dims.iter().rev().map(|&d| d as i64).collect()
    }

    /// Number of elements.
    pub fn element_count(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Bytes of data (checked when the file is read).
    pub fn byte_len(&self) -> u64 {
        self.kind.bytes_for(self.element_count()).unwrap_or(0)
    }
}

/// A parsed GGUF file over its memory-mapped (or owned) bytes.
pub struct GgufFile {
    version: u32,
    metadata: Vec<(String, Value)>,
    index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_start: u64,
    bytes: Bytes,
}

enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl GgufFile {
    /// Memory-maps and parses the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and private to this value; a file changed underneath it
        // by another process could change the bytes read, but every read is bounds-checked
        // against the length fixed at mapping time.
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Self::parse(Bytes::Mapped(map))
    }

    /// Parses a GGUF file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::parse(Bytes::Owned(bytes))
    }

    fn parse(bytes: Bytes) -> Result<Self> {
        let mut r = Reader {
            bytes: &bytes,
            pos: 0,
        };
        let magic: [u8; 4] = r.take("magic", 4)?.try_into().expect("4 bytes");
        if magic != MAGIC {
            return Err(Error::BadMagic { found: magic });
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(Error::UnsupportedVersion(version));
        }
        let tensor_count = r.u64("tensor count")?;
        let metadata_count = r.u64("metadata count")?;

        let mut metadata = Vec::new();
        let mut index = HashMap::new();
        for _ in 0..metadata_count {
            let key = r.string("metadata key")?;
            let type_id = r.u32("metadata value type")?;
            let value = r.value(type_id, &key, 0)?;
            if index.insert(key.clone(), metadata.len()).is_some() {
                return Err(Error::Malformed(format!(
                    "metadata key {key:?} appears twice"
                )));
            }
            metadata.push((key, value));
        }

        let mut tensors = Vec::new();
        let mut tensor_index = HashMap::new();
        for _ in 0..tensor_count {
            let info = r.tensor_info()?;
            if tensor_index
                .insert(info.name.clone(), tensors.len())
                .is_some()
            {
                return Err(Error::Malformed(format!(
                    "tensor {:?} appears twice",
                    info.name
                )));
            }
            tensors.push(info);
        }

        let alignment = match index.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(&i) => metadata[i]
                .1
                .as_u64()
                .filter(|a| a.is_power_of_two())
                .ok_or_else(|| {
                    Error::metadata("general.alignment", "not a power-of-two integer")
                })?,
        };
        let data_start = r.pos.div_ceil(alignment) * alignment;
        let file = Self {
            version,
            metadata,
            index,
            tensors,
            tensor_index,
            alignment,
            data_start,
            bytes,
        };
        for tensor in &file.tensors {
            file.check_tensor(tensor)?;
        }
        Ok(file)
    }

    fn check_tensor(&self, t: &TensorInfo) -> Result<()> {
        if t.offset % self.alignment != 0 {
            return Err(Error::Malformed(format!(
                "tensor {:?}: offset {} is not a multiple of the alignment {}",
                t.name, t.offset, self.alignment
            )));
        }
        let count = t
            .dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| Error::Malformed(format!("tensor {:?}: size overflows", t.name)))?;
        let len = t.kind.bytes_for(count).ok_or_else(|| {
            Error::Malformed(format!(
                "tensor {:?}: {:?} is not a whole number of {} blocks",
                t.name, t.dims, t.kind
            ))
        })?;
        let needed = self
            .data_start
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(len));
        if needed.is_none_or(|end| end > self.bytes.len() as u64) {
            return Err(Error::Truncated {
                what: format!("tensor {:?}", t.name),
                offset: self.data_start.saturating_add(t.offset),
                needed: len,
                len: self.bytes.len() as u64,
            });
        }
        Ok(())
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The alignment of the tensor data.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// All metadata, in file order.
    pub fn metadata_entries(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// The metadata value of `key`.
    pub fn metadata(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// The metadata value of `key` as a non-negative integer, or an error naming the key.
    pub fn require_u64(&self, key: &str) -> Result<u64> {
        self.metadata(key)
            .ok_or_else(|| Error::metadata(key, "absent"))?
            .as_u64()
            .ok_or_else(|| Error::metadata(key, "not a non-negative integer"))
    }

    /// The metadata value of `key` as a float, or an error naming the key.
    pub fn require_f64(&self, key: &str) -> Result<f64> {
        self.metadata(key)
            .ok_or_else(|| Error::metadata(key, "absent"))?
            .as_f64()
            .ok_or_else(|| Error::metadata(key, "not a float"))
    }

    /// The metadata value of `key` as a string, or an error naming the key.
    pub fn require_str(&self, key: &str) -> Result<&str> {
        self.metadata(key)
            .ok_or_else(|| Error::metadata(key, "absent"))?
            .as_str()
            .ok_or_else(|| Error::metadata(key, "not a string"))
    }

    /// The metadata value of `key` as an array, or an error naming the key.
    pub fn require_array(&self, key: &str) -> Result<&[Value]> {
        self.metadata(key)
            .ok_or_else(|| Error::metadata(key, "absent"))?
            .as_array()
            .ok_or_else(|| Error::metadata(key, "not an array"))
    }

    /// The tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The info of tensor `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The raw bytes of tensor `name`.
    pub fn tensor_bytes(&self, name: &str) -> Result<(&TensorInfo, &[u8])> {
        let info = self
            .tensor(name)
            .ok_or_else(|| Error::tensor(name, "absent"))?;
        // In bounds: checked when the file was parsed.
        let start = (self.data_start + info.offset) as usize;
        Ok((info, &self.bytes[start..start + info.byte_len() as usize]))
    }

    /// Tensor `name` dequantized to `f32`, in row-major order (see [`TensorInfo::shape`]).
    pub fn dequantize(&self, name: &str) -> Result<Vec<f32>> {
        let (info, bytes) = self.tensor_bytes(name)?;
        quant::dequantize(info.kind, bytes, info.element_count()).map_err(|e| match e {
            DequantizeError::Unsupported(kind) => Error::UnsupportedQuantization {
                tensor: name.to_owned(),
                kind: kind.to_string(),
            },
            other => Error::Malformed(format!("tensor {name:?}: {other}")),
        })
    }
}

/// A cursor over the file's bytes that checks every read.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: u64,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> u64 {
        self.bytes.len() as u64 - self.pos
    }

    fn take(&mut self, what: &str, n: u64) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::Truncated {
                what: what.to_owned(),
                offset: self.pos,
                needed: n,
                len: self.bytes.len() as u64,
            });
        }
        let start = self.pos as usize;
        self.pos += n;
        Ok(&self.bytes[start..start + n as usize])
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        Ok(self.take(what, N as u64)?.try_into().expect("N bytes"))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(what)?;
        let bytes = self.take(what, len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            Error::Malformed(format!("{what} at offset {} is not UTF-8", self.pos - len))
        })
    }

    fn value(&mut self, type_id: u32, key: &str, depth: usize) -> Result<Value> {
        let what = format!("metadata {key:?}");
        Ok(match type_id {
            0 => Value::U8(self.array::<1>(&what)?[0]),
            1 => Value::I8(self.array::<1>(&what)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array(&what)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(&what)?)),
            4 => Value::U32(u32::from_le_bytes(self.array(&what)?)),
            5 => Value::I32(i32::from_le_bytes(self.array(&what)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(&what)?)),
            7 => match self.array::<1>(&what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(Error::Malformed(format!("{what}: bool byte {b}")));
                }
            },
            8 => Value::String(self.string(&what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(Error::Malformed(format!(
                        "{what}: arrays nested deeper than {MAX_ARRAY_DEPTH}"
                    )));
                }
                let element_type = self.u32(&what)?;
                let len = self.u64(&what)?;
                // Every element takes at least one byte: a longer array cannot fit, and the
                // allocation below is bounded by the file's size.
                if len > self.remaining() {
                    return Err(Error::Truncated {
                        what: format!("{what}: array of {len}"),
                        offset: self.pos,
                        needed: len,
                        len: self.bytes.len() as u64,
                    });
                }
                let mut items = Vec::with_capacity(len as usize);
                for _ in 0..len {
                    items.push(self.value(element_type, key, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(u64::from_le_bytes(self.array(&what)?)),
            11 => Value::I64(i64::from_le_bytes(self.array(&what)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(&what)?)),
            id => {
                return Err(Error::UnknownType {
                    what: "metadata value",
                    id,
                })
            }
        })
    }

    fn tensor_info(&mut self) -> Result<TensorInfo> {
        let name = self.string("tensor name")?;
        let n_dims = self.u32("tensor dimension count")?;
        if n_dims > MAX_DIMS {
            return Err(Error::Malformed(format!(
                "tensor {name:?}: {n_dims} dimensions (at most {MAX_DIMS})"
            )));
        }
        let dims = (0..n_dims)
            .map(|_| self.u64("tensor dimension"))
            .collect::<Result<Vec<_>>>()?;
        let type_id = self.u32("tensor type")?;
        let kind = GgmlType::from_id(type_id).ok_or(Error::UnknownType {
            what: "tensor",
            id: type_id,
        })?;
        let offset = self.u64("tensor offset")?;
        Ok(TensorInfo {
            name,
            dims,
            kind,
            offset,
        })
    }
}

#[cfg(test)]
pub(crate) mod writer;

#[cfg(test)]
mod tests;
