//! SHA-256, the one hash that names things in bcfl: update and model blobs (their
//! `BlobId` in the peer network), the base model of a consortium, the commitments on
//! chain, the files `bcfl audit verify` checks.
//!
//! - [`sha256_hex`]: the hex digest of bytes in memory.
//! - [`file_sha256`]: the hex digest and size of a file, read in [`READ_CHUNK`] pieces, so a
//!   file of any size hashes in constant memory.
//! - [`Sha256Stream`]: the same digest of bytes fed in pieces (a transfer as it arrives).
//!
//! Digests are always 64 lowercase hexadecimal characters, the form the ledger stores.
//!
//! ```
//! use bcfl_fed::digest::{file_sha256, sha256_hex, Sha256Stream};
//!
//! let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
//! assert_eq!(sha256_hex(b"abc"), abc);
//! let mut stream = Sha256Stream::new();
//! stream.update(b"a");
//! stream.update(b"bc");
//! assert_eq!(stream.finish().sha256, abc);
//! # let dir = std::env::temp_dir().join(format!("bcfl-digest-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let path = dir.join("blob");
//! std::fs::write(&path, b"abc")?;
//! let digest = file_sha256(&path)?;
//! assert_eq!((digest.sha256.as_str(), digest.size), (abc, 3));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Bytes read from a file at a time by [`file_sha256`].
pub const READ_CHUNK: usize = 1 << 20;

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The SHA-256 and length of a file or stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Length in bytes.
    pub size: u64,
}

/// The SHA-256 of bytes fed in pieces of any size, and their count.
#[derive(Debug, Clone, Default)]
pub struct Sha256Stream {
    hasher: Sha256,
    size: u64,
}

impl Sha256Stream {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// Bytes fed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest of everything fed.
    pub fn finish(self) -> FileDigest {
        FileDigest {
            sha256: hex::encode(self.hasher.finalize()),
            size: self.size,
        }
    }
}

/// The SHA-256 and length of everything `reader` yields, read in [`READ_CHUNK`] pieces.
pub fn reader_sha256(mut reader: impl Read) -> io::Result<FileDigest> {
    let mut stream = Sha256Stream::new();
    let mut buffer = vec![0u8; READ_CHUNK];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Ok(stream.finish()),
            Ok(n) => stream.update(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The SHA-256 and length of the file at `path`, streamed (constant memory). The error is the
/// bare I/O error: callers name the file in their own error type.
pub fn file_sha256(path: &Path) -> io::Result<FileDigest> {
    reader_sha256(std::fs::File::open(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// FIPS 180-2 / NIST test vectors.
    const VECTORS: [(&[u8], &str); 3] = [
        (
            b"",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            b"abc",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
    ];

    #[test]
    fn known_vectors_in_memory_and_from_files() {
        let dir = tempfile::tempdir().unwrap();
        for (i, (bytes, expected)) in VECTORS.into_iter().enumerate() {
            assert_eq!(sha256_hex(bytes), expected);
            let path = dir.path().join(i.to_string());
            std::fs::write(&path, bytes).unwrap();
            let digest = file_sha256(&path).unwrap();
            assert_eq!(digest.sha256, expected);
            assert_eq!(digest.size, bytes.len() as u64);
        }
    }

    /// One million `a`: longer than a read chunk, so the file is streamed in pieces.
    #[test]
    fn a_million_a_streams_across_read_chunks() {
        let expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
        let bytes = vec![b'a'; 1_000_000];
        assert_eq!(sha256_hex(&bytes), expected);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        let mut doubled = bytes.clone();
        doubled.extend_from_slice(&bytes);
        std::fs::write(&path, &doubled).unwrap();
        assert!(doubled.len() > READ_CHUNK);
        let digest = file_sha256(&path).unwrap();
        assert_eq!(digest.sha256, sha256_hex(&doubled));
        assert_eq!(digest.size, 2_000_000);
    }

    #[test]
    fn a_missing_file_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = file_sha256(&dir.path().join("missing")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    proptest! {
        /// Any split of the input into pieces gives the digest of the whole.
        #[test]
        fn stream_equals_one_shot(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            cuts in proptest::collection::vec(0usize..2000, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut stream = Sha256Stream::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                stream.update(&bytes[start..cut]);
                start = cut;
            }
            prop_assert_eq!(stream.size(), bytes.len() as u64);
            let digest = stream.finish();
            prop_assert_eq!(digest.sha256, sha256_hex(&bytes));
            prop_assert_eq!(reader_sha256(&bytes[..]).unwrap().size, bytes.len() as u64);
        }
    }
}
