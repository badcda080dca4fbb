//! A reader of safetensors files (spec: huggingface/safetensors `README.md`), memory-mapped:
//! an 8-byte little-endian header length, a JSON header mapping each tensor's name to its
//! `dtype`, `shape` and `data_offsets` (`[begin, end)`, from the end of the header; the key
//! `__metadata__` holds free strings), then the data, little-endian.
//!
//! Every offset and length is checked against the file when it is opened, so a truncated or
//! hostile file is an [`Error`] naming it, never a panic. Tensors are read one at a time, as
//! `f32` (from `F32`, `F16` or `BF16`; other types are an error naming the tensor).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::Deserialize;
use tch::{Kind, Tensor};

use crate::llm::{Error, Result};

/// Largest header accepted (the format's own reader refuses more than 100 MB).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One tensor's entry in the header.
#[derive(Clone, Debug, Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// A parsed safetensors file over its mapped bytes.
pub(crate) struct SafetensorsFile {
    path: PathBuf,
    map: Mmap,
    data_start: u64,
    entries: HashMap<String, Entry>,
}

impl std::fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("path", &self.path)
            .field("tensors", &self.entries.len())
            .finish()
    }
}

/// Bytes per element of a safetensors `dtype`, for the types this reader knows.
fn element_bytes(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => return None,
    })
}

impl SafetensorsFile {
    /// Maps and checks the file at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and private to this value; every read is bounds-checked
        // against the length fixed at mapping time (as in `GgufFile::open`).
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let bad = |problem: String| Error::checkpoint(path, problem);
        let len = map.len() as u64;
        let header_len = map
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .ok_or_else(|| bad(format!("{len} bytes: too short for a safetensors header")))?;
        if header_len > MAX_HEADER_BYTES || 8 + header_len > len {
            return Err(bad(format!(
                "header of {header_len} bytes does not fit in the file's {len}"
            )));
        }
        let header = &map[8..8 + header_len as usize];
        let mut raw: HashMap<String, serde_json::Value> = serde_json::from_slice(header)
            .map_err(|e| bad(format!("header is not a JSON object: {e}")))?;
        raw.remove("__metadata__");
        let data_start = 8 + header_len;
        let data_len = len - data_start;
        let mut entries = HashMap::with_capacity(raw.len());
        for (name, value) in raw {
            let entry: Entry =
                serde_json::from_value(value).map_err(|e| bad(format!("tensor {name}: {e}")))?;
            let [begin, end] = entry.data_offsets;
            let size = entry
                .shape
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .and_then(|n| n.checked_mul(element_bytes(&entry.dtype)?));
            if size != end.checked_sub(begin) || end > data_len {
                return Err(bad(format!(
                    "tensor {name}: {} {:?} at bytes {begin}..{end} of {data_len} does not fit",
                    entry.dtype, entry.shape
                )));
            }
            entries.insert(name, entry);
        }
        Ok(Self {
            path: path.to_owned(),
            map,
            data_start,
            entries,
        })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The names of its tensors, in no order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Whether the file holds `name`.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The tensor `name` as `f32` on the CPU, `None` if absent.
    pub(crate) fn tensor_f32(&self, name: &str) -> Result<Option<Tensor>> {
        let Some(entry) = self.entries.get(name) else {
            return Ok(None);
        };
        let kind = match entry.dtype.as_str() {
            "F32" => Kind::Float,
            "F16" => Kind::Half,
            "BF16" => Kind::BFloat16,
            other => {
                return Err(Error::checkpoint(
                    &self.path,
                    format!("tensor {name}: dtype {other} is not supported (F32, F16, BF16 are)"),
                ))
            }
        };
        // In bounds: checked when the file was opened.
        let [begin, end] = entry.data_offsets.map(|o| (self.data_start + o) as usize);
        let shape: Vec<i64> = entry.shape.iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(&self.map[begin..end], &shape, kind)?;
        Ok(Some(t.to_kind(Kind::Float)))
    }
}
