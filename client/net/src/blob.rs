//! The content-addressed blob store: one file per blob, named by its SHA-256.
//!
//! Layout: `DIR/<sha256>` for each held blob and `DIR/tmp/` for blobs being written. A blob is
//! written to a temporary file, hashed while written, and renamed to its name only when the hash
//! matches ([`BlobWriter::commit`]): the store never holds a file whose name lies about its
//! content, and a crash leaves only temporary files, removed on the next open.
//!
//! Each held blob's [`Manifest`] is computed from the verified bytes when it enters the store
//! (or, for blobs found on disk at open, on first use, after re-checking the file's hash) and
//! cached in memory, so the server answers manifest requests without rereading the file.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), bcfl_net::NetError> {
//! use bcfl_net::blob::BlobStore;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = BlobStore::open(dir.path(), 1 << 20)?;
//! let id = store.insert_bytes(b"weights").await?;
//! assert!(store.contains(&id));
//! assert_eq!(store.manifest(&id).await?.unwrap().size, 7);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::{NetError, Result};
use super::manifest::{BlobId, Manifest, ManifestBuilder, MAX_CHUNK_SIZE};
use bcfl_fed::digest::file_sha256;

/// The default chunk size of manifests and relays: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: u64 = 1 << 20;

/// A directory of blobs named by their SHA-256.
#[derive(Debug)]
pub struct BlobStore {
    dir: PathBuf,
    chunk_size: u64,
    manifests: Mutex<HashMap<BlobId, Arc<Manifest>>>,
    next_temp: AtomicU64,
}

impl BlobStore {
    /// Opens (creating) the store in `dir`, with manifests of `chunk_size` byte chunks (at
    /// most [`MAX_CHUNK_SIZE`]).
    /// Leftover temporary files of an earlier run are removed.
    pub fn open(dir: impl AsRef<Path>, chunk_size: u64) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let tmp = dir.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| NetError::io(tmp.display(), e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| NetError::io(tmp.display(), e))?;
        Ok(Self {
            dir,
            chunk_size: chunk_size.clamp(1, MAX_CHUNK_SIZE),
            manifests: Mutex::new(HashMap::new()),
            next_temp: AtomicU64::new(0),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The chunk size of the store's manifests.
    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// The file of blob `id` (whether or not it is held).
    pub fn path(&self, id: &BlobId) -> PathBuf {
        self.dir.join(id.as_str())
    }

    /// True when blob `id` is held.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.path(id).is_file()
    }

    /// The ids of every held blob, sorted.
    pub fn list(&self) -> Result<Vec<BlobId>> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| NetError::io(self.dir.display(), e))?;
        let mut ids: Vec<BlobId> = entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|entry| BlobId::parse(&entry.file_name().to_string_lossy()).ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Starts writing a blob expected to be `expected`; nothing is visible until
    /// [`BlobWriter::commit`] checks the hash.
    pub async fn writer(&self, expected: BlobId) -> Result<BlobWriter<'_>> {
        let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
        let temp = self
            .dir
            .join("tmp")
            .join(format!("{}.{}.{n}", expected, std::process::id()));
        let file = tokio::fs::File::create(&temp)
            .await
            .map_err(|e| NetError::io(temp.display(), e))?;
        Ok(BlobWriter {
            store: self,
            expected,
            temp,
            file: Some(file),
            manifest: ManifestBuilder::new(self.chunk_size),
        })
    }

    /// Stores `data`, returning its id.
    pub async fn insert_bytes(&self, data: &[u8]) -> Result<BlobId> {
        let id = BlobId::of_bytes(data);
        let mut writer = self.writer(id.clone()).await?;
        writer.write(data).await?;
        writer.commit().await?;
        Ok(id)
    }

    /// Copies the file at `path` into the store, returning its id.
    pub async fn insert_file(&self, path: &Path) -> Result<BlobId> {
        let owned = path.to_owned();
        let digest = tokio::task::spawn_blocking(move || file_sha256(&owned))
            .await
            .map_err(|e| NetError::io(path.display(), std::io::Error::other(e)))?
            .map_err(|e| NetError::io(path.display(), e))?;
        let id = BlobId::parse(&digest.sha256)?;
        if self.contains(&id) {
            return Ok(id);
        }
        let mut buffer = vec![0u8; 1 << 16];
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| NetError::io(path.display(), e))?;
        let mut writer = self.writer(id.clone()).await?;
        loop {
            let n = file
                .read(&mut buffer)
                .await
                .map_err(|e| NetError::io(path.display(), e))?;
            if n == 0 {
                break;
            }
            writer.write(&buffer[..n]).await?;
        }
        writer.commit().await?;
        Ok(id)
    }

    /// The manifest of held blob `id`, or `None` when it is not held.
    ///
    /// A blob found on disk without a cached manifest is re-hashed first; if its content no
    /// longer matches its name it is removed and reported as not held.
    pub async fn manifest(&self, id: &BlobId) -> Result<Option<Arc<Manifest>>> {
        if let Some(m) = self.manifests.lock().expect("manifest cache").get(id) {
            if self.contains(id) {
                return Ok(Some(m.clone()));
            }
        }
        let path = self.path(id);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(NetError::io(path.display(), e)),
        };
        let mut builder = ManifestBuilder::new(self.chunk_size);
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let n = file
                .read(&mut buffer)
                .await
                .map_err(|e| NetError::io(path.display(), e))?;
            if n == 0 {
                break;
            }
            builder.update(&buffer[..n]);
        }
        let manifest = builder.finish();
        if &manifest.sha256 != id {
            tracing::warn!(blob = %id, actual = %manifest.sha256, "stored blob is corrupt; removing it");
            self.remove(id)?;
            return Ok(None);
        }
        let manifest = Arc::new(manifest);
        self.manifests
            .lock()
            .expect("manifest cache")
            .insert(id.clone(), manifest.clone());
        Ok(Some(manifest))
    }

    /// Removes blob `id` (no error when it is not held).
    pub fn remove(&self, id: &BlobId) -> Result<()> {
        self.manifests.lock().expect("manifest cache").remove(id);
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NetError::io(path.display(), e)),
        }
    }
}

/// A blob being written: bytes go to a temporary file and into a hash; [`commit`](Self::commit)
/// renames it into the store only if the hash is the expected one. Dropped without a commit,
/// the temporary file is removed.
#[derive(Debug)]
pub struct BlobWriter<'a> {
    store: &'a BlobStore,
    expected: BlobId,
    temp: PathBuf,
    file: Option<tokio::fs::File>,
    manifest: ManifestBuilder,
}

impl BlobWriter<'_> {
    /// Appends bytes.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        let file = self.file.as_mut().expect("open until commit");
        file.write_all(data)
            .await
            .map_err(|e| NetError::io(self.temp.display(), e))?;
        self.manifest.update(data);
        Ok(())
    }

    /// Waits until every byte written so far is in the temporary file (readers of
    /// [`temp_path`](Self::temp_path) see it).
    pub async fn flush(&mut self) -> Result<()> {
        let file = self.file.as_mut().expect("open until commit");
        file.flush()
            .await
            .map_err(|e| NetError::io(self.temp.display(), e))
    }

    /// The temporary file the bytes go to until the commit.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Checks the hash and moves the blob into the store (atomically, by rename).
    pub async fn commit(mut self) -> Result<Arc<Manifest>> {
        let file = self.file.take().expect("open until commit");
        file.sync_all()
            .await
            .map_err(|e| NetError::io(self.temp.display(), e))?;
        drop(file);
        let builder = std::mem::replace(&mut self.manifest, ManifestBuilder::new(1));
        let manifest = builder.finish();
        if manifest.sha256 != self.expected {
            return Err(NetError::HashMismatch {
                expected: self.expected.to_string(),
                actual: manifest.sha256.to_string(),
            });
        }
        let target = self.store.path(&self.expected);
        tokio::fs::rename(&self.temp, &target)
            .await
            .map_err(|e| NetError::io(target.display(), e))?;
        let manifest = Arc::new(manifest);
        self.store
            .manifests
            .lock()
            .expect("manifest cache")
            .insert(self.expected.clone(), manifest.clone());
        Ok(manifest)
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        // After a successful commit the temporary file is gone; otherwise discard it.
        let _ = std::fs::remove_file(&self.temp);
    }
}
