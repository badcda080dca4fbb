//! Blob ids and chunk manifests: how a receiver checks a transfer while it arrives.
//!
//! A blob is named by the SHA-256 of its bytes ([`BlobId`]). Its [`Manifest`] lists the SHA-256
//! of every `chunk_size` piece, so a receiver (and every relay) can reject a corrupt chunk as
//! soon as it arrives instead of after the whole transfer. The manifest itself is not on chain:
//! a false manifest can only make a receiver reject good data, never accept bad data, because
//! the whole blob's SHA-256 (the on-chain value, the blob's id) is checked at the end as well
//! ([`ChunkVerifier::finish`]).
//!
//! A false manifest could still make a receiver spend memory and disk, so a manifest is only
//! used after [`Manifest::validate`]: its chunks are at most [`MAX_CHUNK_SIZE`] (a verifier
//! buffers one chunk before it can check it, so this bounds what a sender makes it hold), and
//! its size is checked against what the receiver expects ([`SizeBound`]: the on-chain size of
//! the commitment or aggregate where the receiver knows it, else the node's own bound).
//!
//! ```
//! use bcfl_net::manifest::{BlobId, ChunkVerifier, Manifest};
//!
//! let data = vec![7u8; 10_000];
//! let manifest = Manifest::of_bytes(&data, 4096);
//! assert_eq!(manifest.chunks.len(), 3);
//! let mut verifier = ChunkVerifier::new(manifest.clone());
//! let mut verified = 0;
//! for piece in data.chunks(1000) {
//!     verified += verifier.push(piece)?.iter().map(|c| c.len()).sum::<usize>();
//! }
//! verifier.finish()?;
//! assert_eq!(verified, data.len());
//! assert_eq!(manifest.sha256, BlobId::of_bytes(&data));
//! # Ok::<(), bcfl_net::NetError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use super::error::{NetError, Result};
use bcfl_fed::digest::{sha256_hex, Sha256Stream};
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// The SHA-256 of a blob's bytes, as 64 lowercase hexadecimal characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlobId(String);

impl BlobId {
    /// Parses a hex SHA-256 (upper case is accepted and normalised to lower case).
    pub fn parse(text: &str) -> Result<Self> {
        let lower = text.to_ascii_lowercase();
        if lower.len() == 64 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(lower))
        } else {
            Err(NetError::InvalidBlobId(text.to_owned()))
        }
    }

    /// The id of `data` ([`sha256_hex`]).
    pub fn of_bytes(data: &[u8]) -> Self {
        Self(sha256_hex(data))
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for BlobId {
    type Err = NetError;

    fn from_str(text: &str) -> Result<Self> {
        Self::parse(text)
    }
}

impl TryFrom<String> for BlobId {
    type Error = NetError;

    fn try_from(text: String) -> Result<Self> {
        Self::parse(&text)
    }
}

impl From<BlobId> for String {
    fn from(id: BlobId) -> Self {
        id.0
    }
}

/// The largest chunk a manifest may declare: 16 MiB. A [`ChunkVerifier`] holds at most one
/// chunk in memory, so this bounds the memory one transfer costs a receiver or a relay,
/// whatever its sender claims (stores cut blobs into [`DEFAULT_CHUNK_SIZE`] chunks, 1 MiB).
///
/// [`DEFAULT_CHUNK_SIZE`]: super::blob::DEFAULT_CHUNK_SIZE
pub const MAX_CHUNK_SIZE: u64 = 16 << 20;

/// What size a receiver accepts for a blob: exactly the size it knows (from the chain), or at
/// most a bound of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeBound {
    /// The blob has exactly this many bytes (e.g. a commitment's `size_bytes`).
    Exactly(u64),
    /// The blob has at most this many bytes.
    AtMost(u64),
}

impl SizeBound {
    /// Whether `size` satisfies the bound.
    pub fn admits(self, size: u64) -> bool {
        match self {
            Self::Exactly(n) => size == n,
            Self::AtMost(n) => size <= n,
        }
    }
}

impl fmt::Display for SizeBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exactly(n) => write!(f, "exactly {n} bytes"),
            Self::AtMost(n) => write!(f, "at most {n} bytes"),
        }
    }
}

/// The per-chunk SHA-256 hashes of one blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The whole blob's SHA-256 (its id).
    pub sha256: BlobId,
    /// The blob's length in bytes.
    pub size: u64,
    /// The length of every chunk but the last.
    pub chunk_size: u64,
    /// The hex SHA-256 of each chunk, in order.
    pub chunks: Vec<String>,
}

impl Manifest {
    /// The manifest of `data` cut into `chunk_size` pieces (`chunk_size` of 0 is taken as 1).
    pub fn of_bytes(data: &[u8], chunk_size: u64) -> Self {
        let mut builder = ManifestBuilder::new(chunk_size);
        builder.update(data);
        builder.finish()
    }

    /// Checks that the manifest describes blob `id`, is internally consistent, declares
    /// chunks of at most [`MAX_CHUNK_SIZE`] and a size that `bound` admits.
    pub fn validate_within(&self, id: &BlobId, bound: SizeBound) -> Result<()> {
        self.validate(id)?;
        if !bound.admits(self.size) {
            return Err(NetError::InvalidManifest {
                blob: id.to_string(),
                reason: format!("it declares {} bytes, expected {bound}", self.size),
            });
        }
        Ok(())
    }

    /// Checks that the manifest describes blob `id`, is internally consistent and declares
    /// chunks of at most [`MAX_CHUNK_SIZE`].
    pub fn validate(&self, id: &BlobId) -> Result<()> {
        let invalid = |reason: String| NetError::InvalidManifest {
            blob: id.to_string(),
            reason,
        };
        if &self.sha256 != id {
            return Err(invalid(format!("it describes blob {}", self.sha256)));
        }
        if self.chunk_size == 0 {
            return Err(invalid("chunk size 0".into()));
        }
        if self.chunk_size > MAX_CHUNK_SIZE {
            return Err(invalid(format!(
                "chunk size {} exceeds the limit of {MAX_CHUNK_SIZE} bytes",
                self.chunk_size
            )));
        }
        let expected = self.size.div_ceil(self.chunk_size);
        if self.chunks.len() as u64 != expected {
            return Err(invalid(format!(
                "{} chunk hashes for {} bytes in chunks of {}",
                self.chunks.len(),
                self.size,
                self.chunk_size
            )));
        }
        Ok(())
    }

    /// The length of chunk `index`.
    pub fn chunk_len(&self, index: usize) -> u64 {
        let start = index as u64 * self.chunk_size;
        self.chunk_size.min(self.size.saturating_sub(start))
    }
}

/// Builds a [`Manifest`] from bytes fed in pieces of any size.
#[derive(Debug, Clone)]
pub struct ManifestBuilder {
    chunk_size: u64,
    whole: Sha256Stream,
    chunk: Sha256Stream,
    chunks: Vec<String>,
}

impl ManifestBuilder {
    /// A builder for chunks of `chunk_size` bytes (0 is taken as 1).
    pub fn new(chunk_size: u64) -> Self {
        Self {
            chunk_size: chunk_size.max(1),
            whole: Sha256Stream::new(),
            chunk: Sha256Stream::new(),
            chunks: Vec::new(),
        }
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.whole.update(data);
        while !data.is_empty() {
            let room = (self.chunk_size - self.chunk.size()) as usize;
            let take = room.min(data.len());
            self.chunk.update(&data[..take]);
            data = &data[take..];
            if self.chunk.size() == self.chunk_size {
                let chunk = std::mem::take(&mut self.chunk).finish();
                self.chunks.push(chunk.sha256);
            }
        }
    }

    /// The manifest of everything fed.
    pub fn finish(mut self) -> Manifest {
        if self.chunk.size() > 0 {
            self.chunks.push(self.chunk.finish().sha256);
        }
        let whole = self.whole.finish();
        Manifest {
            sha256: BlobId(whole.sha256),
            size: whole.size,
            chunk_size: self.chunk_size,
            chunks: self.chunks,
        }
    }
}

/// Checks a transfer against a manifest while it arrives and hands back only verified chunks.
///
/// Bytes are buffered until a whole chunk is in, the chunk is hashed against the manifest, and
/// only then released: a relay forwards nothing it has not checked, which is the `chunk / B`
/// per-hop term of the pipelined cost model.
#[derive(Debug)]
pub struct ChunkVerifier {
    manifest: Manifest,
    buffer: BytesMut,
    index: usize,
    received: u64,
    whole: Sha256Stream,
}

impl ChunkVerifier {
    /// A verifier for the blob `manifest` describes (validate it first: the verifier buffers up
    /// to one chunk, so an unchecked manifest could make it hold any amount).
    pub fn new(manifest: Manifest) -> Self {
        Self {
            buffer: BytesMut::with_capacity(manifest.chunk_size.min(MAX_CHUNK_SIZE) as usize),
            manifest,
            index: 0,
            received: 0,
            whole: Sha256Stream::new(),
        }
    }

    /// The manifest being checked against.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    fn too_long(&self) -> NetError {
        NetError::Truncated {
            blob: self.manifest.sha256.to_string(),
            expected: self.manifest.size,
            received: self.received,
        }
    }

    fn check_chunk(&mut self, chunk: &[u8]) -> Result<()> {
        let digest = sha256_hex(chunk);
        if self.manifest.chunks.get(self.index) != Some(&digest) {
            return Err(NetError::ChunkMismatch {
                blob: self.manifest.sha256.to_string(),
                index: self.index,
            });
        }
        self.whole.update(chunk);
        self.index += 1;
        Ok(())
    }

    /// Feeds received bytes; returns the chunks completed and verified by them.
    pub fn push(&mut self, mut data: &[u8]) -> Result<Vec<Bytes>> {
        self.received += data.len() as u64;
        if self.received > self.manifest.size {
            return Err(self.too_long());
        }
        let mut done = Vec::new();
        while !data.is_empty() {
            let want = self.manifest.chunk_len(self.index) as usize - self.buffer.len();
            let take = want.min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if take == want {
                let chunk = self.buffer.split().freeze();
                self.check_chunk(&chunk)?;
                done.push(chunk);
            }
        }
        Ok(done)
    }

    /// Ends the transfer: checks the length and the whole blob's SHA-256 (every chunk was
    /// already released by [`push`](Self::push)).
    pub fn finish(self) -> Result<()> {
        if self.received != self.manifest.size || !self.buffer.is_empty() {
            return Err(NetError::Truncated {
                blob: self.manifest.sha256.to_string(),
                expected: self.manifest.size,
                received: self.received,
            });
        }
        let actual = self.whole.finish().sha256;
        if actual != self.manifest.sha256.as_str() {
            return Err(NetError::HashMismatch {
                expected: self.manifest.sha256.to_string(),
                actual,
            });
        }
        Ok(())
    }
}
