//! Update blobs: the trainable tensors of a model (LoRA `A` and `B`, the head) as a canonical
//! safetensors file, optionally int8-quantized, identified by its SHA-256.
//!
//! Canonical form, so that equal updates are equal bytes:
//! - tensors are laid out in ascending byte order of their names, contiguously from offset 0;
//! - the header is compact JSON: `__metadata__` first, then the tensors in the same order, each
//!   as `{"dtype":..,"shape":[..],"data_offsets":[begin,end]}`, padded with spaces to a multiple
//!   of 8 bytes; values are little-endian;
//! - `__metadata__` holds `format` = `bcfl-update-v1`, and for an int8 file `scale.<name>`, the
//!   per-tensor scale as Rust's shortest round-trip decimal of the `f32`.
//!
//! int8 quantization is symmetric per tensor: `scale = max|x| / 127`, `q = round(x / scale)`,
//! decoded as `q · scale` (in `f32`). It shrinks an update about four times.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The `format` metadata of update files.
pub const FORMAT: &str = "bcfl-update-v1";

/// Element type of a stored tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// 32-bit floats.
    F32,
    /// 8-bit integers with a per-tensor scale.
    Int8,
}

/// A named set of `f32` tensors in name order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Update {
    /// Tensors by name: shape and row-major values.
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Update {
    /// `self − base`, tensor by tensor: the change from `base` (same names and shapes
    /// required). Rounded once per value to `f32`.
    pub fn minus(&self, base: &Update) -> Result<Update> {
        self.zip(base, |x, y| x - y)
    }

    /// `self + change`, tensor by tensor (same names and shapes required): `change` applied to
    /// this model, e.g. a stale update rebased onto a newer parent.
    pub fn plus(&self, change: &Update) -> Result<Update> {
        self.zip(change, |x, y| x + y)
    }

    fn zip(&self, other: &Update, op: impl Fn(f32, f32) -> f32) -> Result<Update> {
        if self.tensors.len() != other.tensors.len() {
            return Err(Error::Update(format!(
                "{} tensors against {}",
                self.tensors.len(),
                other.tensors.len()
            )));
        }
        let mut out = Update::default();
        for (name, (shape, values)) in &self.tensors {
            let Some((other_shape, theirs)) = other.tensors.get(name) else {
                return Err(Error::Update(format!("tensor {name} is missing")));
            };
            if shape != other_shape {
                return Err(Error::Update(format!(
                    "{name}: shape {shape:?} against {other_shape:?}"
                )));
            }
            let combined = values.iter().zip(theirs).map(|(&x, &y)| op(x, y)).collect();
            out.tensors.insert(name.clone(), (shape.clone(), combined));
        }
        Ok(out)
    }

    /// Every value in `f64`, tensors in name order, each row-major: the flattened update the
    /// statistics and the colluding attacks work on.
    pub fn flattened(&self) -> Vec<f64> {
        self.tensors
            .values()
            .flat_map(|(_, v)| v.iter().map(|&x| f64::from(x)))
            .collect()
    }

    /// An update of the same tensors holding `values` in [`Update::flattened`]'s order
    /// (rounded to `f32`; missing values are 0, extra ones are ignored).
    pub fn with_flattened(&self, values: &[f64]) -> Update {
        let mut out = self.clone();
        let mut values = values.iter();
        for (_, tensor) in out.tensors.values_mut() {
            for v in tensor.iter_mut() {
                *v = values.next().copied().unwrap_or_default() as f32;
            }
        }
        out
    }

    /// Each tensor's name and shape, in name order: what two updates of one model share.
    pub fn layout(&self) -> Vec<(&str, &[usize])> {
        self.tensors
            .iter()
            .map(|(name, (shape, _))| (name.as_str(), shape.as_slice()))
            .collect()
    }

    /// Number of scalar parameters.
    pub fn parameters(&self) -> usize {
        self.tensors.values().map(|(_, v)| v.len()).sum()
    }

    /// The canonical safetensors bytes.
    pub fn to_bytes(&self, encoding: Encoding) -> Vec<u8> {
        let mut metadata = vec![("format".to_string(), FORMAT.to_string())];
        let mut data = Vec::new();
        let mut entries = Vec::new();
        for (name, (shape, values)) in &self.tensors {
            let begin = data.len();
            let dtype = match encoding {
                Encoding::F32 => {
                    for v in values {
                        data.extend_from_slice(&v.to_le_bytes());
                    }
                    "F32"
                }
                Encoding::Int8 => {
                    let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
                    data.extend(
                        values
                            .iter()
                            .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8 as u8),
                    );
                    metadata.push((format!("scale.{name}"), format!("{scale:?}")));
                    "I8"
                }
            };
            entries.push((name.clone(), dtype, shape.clone(), begin, data.len()));
        }
        let mut header = String::from("{\"__metadata__\":{");
        let meta: Vec<String> = metadata
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}:{}",
                    serde_json::Value::from(k.as_str()),
                    serde_json::Value::from(v.as_str())
                )
            })
            .collect();
        header.push_str(&meta.join(","));
        header.push('}');
        for (name, dtype, shape, begin, end) in entries {
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            header.push_str(&format!(
                ",{}:{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{begin},{end}]}}",
                serde_json::Value::from(name.as_str()),
                dims.join(",")
            ));
        }
        header.push('}');
        while header.len() % 8 != 0 {
            header.push(' ');
        }
        let mut out = Vec::with_capacity(8 + header.len() + data.len());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&data);
        out
    }

    /// Decodes a safetensors update (`F32` or scaled `I8` tensors).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let header = Header::parse(&mut std::io::Cursor::new(bytes), "update bytes")?;
        let mut tensors = BTreeMap::new();
        for (name, entry) in &header.tensors {
            let begin = header.data_start + entry.begin;
            let raw = bytes
                .get(begin as usize..(begin + entry.len) as usize)
                .ok_or_else(|| Error::Update(format!("{name}: data past the end")))?;
            tensors.insert(
                name.clone(),
                (entry.shape.clone(), entry.decode(name, raw)?),
            );
        }
        Ok(Self { tensors })
    }
}

/// Hex SHA-256 of update bytes, the update's identity: [`crate::digest::sha256_hex`], named here
/// too because update files are where most callers meet it.
pub use crate::digest::sha256_hex;

/// One tensor's place in a safetensors file.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Shape.
    pub shape: Vec<usize>,
    /// Element encoding.
    pub encoding: Encoding,
    /// Scale of an int8 tensor (1 for f32).
    pub scale: f32,
    begin: u64,
    len: u64,
}

impl Entry {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The value of a stored int8 byte: `q · scale` in `f32`.
    #[inline(always)]
    pub fn int8_value(byte: u8, scale: f32) -> f32 {
        f32::from(byte as i8) * scale
    }

    fn decode(&self, name: &str, raw: &[u8]) -> Result<Vec<f32>> {
        let values: Vec<f32> = match self.encoding {
            Encoding::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Encoding::Int8 => raw
                .iter()
                .map(|&b| Self::int8_value(b, self.scale))
                .collect(),
        };
        if values.len() != self.numel() {
            return Err(Error::Update(format!(
                "{name}: {} values for shape {:?}",
                values.len(),
                self.shape
            )));
        }
        Ok(values)
    }
}

/// The parsed header of a safetensors file.
#[derive(Clone, Debug)]
pub struct Header {
    /// Tensors by name.
    pub tensors: BTreeMap<String, Entry>,
    data_start: u64,
}

impl Header {
    /// Where a tensor's bytes lie in its file (saturating; not checked against the file's
    /// length: compare before reading).
    pub fn data_range(&self, entry: &Entry) -> std::ops::Range<u64> {
        let begin = self.data_start.saturating_add(entry.begin);
        begin..begin.saturating_add(entry.len)
    }

    /// Reads the header at the start of a safetensors file; `what` names it in errors.
    pub fn parse(reader: &mut impl Read, what: &str) -> Result<Self> {
        let mut len = [0u8; 8];
        reader
            .read_exact(&mut len)
            .map_err(|e| Error::Update(format!("{what}: {e}")))?;
        let len = u64::from_le_bytes(len);
        if len > 100 << 20 {
            return Err(Error::Update(format!("{what}: header of {len} bytes")));
        }
        let mut text = vec![0u8; len as usize];
        reader
            .read_exact(&mut text)
            .map_err(|e| Error::Update(format!("{what}: {e}")))?;
        let json: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(&text).map_err(|e| Error::json(what, e))?;
        let metadata = json.get("__metadata__").cloned().unwrap_or_default();
        let mut tensors = BTreeMap::new();
        for (name, spec) in json.iter().filter(|(k, _)| *k != "__metadata__") {
            let bad = || Error::Update(format!("{what}: bad entry for {name}"));
            let shape: Vec<usize> =
                serde_json::from_value(spec["shape"].clone()).map_err(|_| bad())?;
            let offsets: [u64; 2] =
                serde_json::from_value(spec["data_offsets"].clone()).map_err(|_| bad())?;
            let (encoding, scale) = match spec["dtype"].as_str() {
                Some("F32") => (Encoding::F32, 1.0),
                Some("I8") => {
                    let scale = metadata[format!("scale.{name}")]
                        .as_str()
                        .and_then(|s| s.parse::<f32>().ok())
                        .ok_or_else(|| {
                            Error::Update(format!("{what}: no scale for int8 {name}"))
                        })?;
                    (Encoding::Int8, scale)
                }
                other => return Err(Error::Update(format!("{what}: {name} has dtype {other:?}"))),
            };
            tensors.insert(
                name.clone(),
                Entry {
                    shape,
                    encoding,
                    scale,
                    begin: offsets[0],
                    len: offsets[1].checked_sub(offsets[0]).ok_or_else(bad)?,
                },
            );
        }
        Ok(Self {
            tensors,
            data_start: 8 + len,
        })
    }
}

/// A safetensors update file read one tensor at a time.
#[derive(Debug)]
pub struct UpdateFile {
    path: PathBuf,
    file: fs::File,
    header: Header,
}

impl UpdateFile {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let header = Header::parse(&mut file, &path.display().to_string())?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            header,
        })
    }

    /// The tensors it holds.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Reads and decodes one tensor.
    pub fn read(&mut self, name: &str) -> Result<Vec<f32>> {
        let entry =
            self.header.tensors.get(name).ok_or_else(|| {
                Error::Update(format!("{}: no tensor {name}", self.path.display()))
            })?;
        let mut raw = vec![0u8; entry.len as usize];
        self.file
            .seek(SeekFrom::Start(self.header.data_start + entry.begin))
            .and_then(|_| self.file.read_exact(&mut raw))
            .map_err(|e| Error::io(&self.path, e))?;
        entry.decode(name, &raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Update {
        let mut tensors = BTreeMap::new();
        tensors.insert(
            "b.lora_b".to_string(),
            (vec![2, 2], vec![0.5, -1.0, 0.0, 2.0]),
        );
        tensors.insert("a.lora_a".to_string(), (vec![3], vec![1.0, -0.25, 0.125]));
        Update { tensors }
    }

    #[test]
    fn f32_round_trip_is_exact_and_canonical() {
        let update = sample();
        let bytes = update.to_bytes(Encoding::F32);
        assert_eq!(Update::from_bytes(&bytes).unwrap(), update);
        // Streaming reads give the same tensors (libtorch reads the same file in
        // `bcfl_client::train::tensors`' tests).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.safetensors");
        fs::write(&path, &bytes).unwrap();
        let mut file = UpdateFile::open(&path).unwrap();
        assert_eq!(file.read("b.lora_b").unwrap(), [0.5, -1.0, 0.0, 2.0]);
        // Same content, same bytes: the digest identifies the update.
        assert_eq!(
            sha256_hex(&sample().to_bytes(Encoding::F32)),
            sha256_hex(&bytes)
        );
    }

    #[test]
    fn minus_and_plus_are_inverse_and_refuse_mismatches() {
        let a = sample();
        let mut b = sample();
        for (_, values) in b.tensors.values_mut() {
            for v in values.iter_mut() {
                *v = *v * 0.5 + 1.0;
            }
        }
        let change = b.minus(&a).unwrap();
        assert_eq!(change.tensors["a.lora_a"].1, [0.5, 1.125, 0.9375]);
        assert_eq!(a.plus(&change).unwrap(), b);
        let mut fewer = sample();
        fewer.tensors.remove("a.lora_a");
        assert!(a.minus(&fewer).is_err());
        let mut reshaped = sample();
        reshaped.tensors.get_mut("a.lora_a").unwrap().0 = vec![1, 3];
        assert!(a.plus(&reshaped).unwrap_err().to_string().contains("shape"));
    }

    #[test]
    fn int8_is_four_times_smaller_and_within_half_a_step() {
        let values: Vec<f32> = (0..1000).map(|i| ((i as f32) * 0.37).sin()).collect();
        let mut tensors = BTreeMap::new();
        tensors.insert("w".to_string(), (vec![1000], values.clone()));
        let update = Update { tensors };
        let full = update.to_bytes(Encoding::F32);
        let small = update.to_bytes(Encoding::Int8);
        assert!(
            small.len() * 3 < full.len(),
            "{} vs {}",
            small.len(),
            full.len()
        );
        let decoded = Update::from_bytes(&small).unwrap();
        let scale = values.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        for (a, b) in values.iter().zip(&decoded.tensors["w"].1) {
            assert!((a - b).abs() <= scale * 0.5 + 1e-7, "{a} vs {b}");
        }
        // Quantization is deterministic.
        assert_eq!(update.to_bytes(Encoding::Int8), small);
    }
}
