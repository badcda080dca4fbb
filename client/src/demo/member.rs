//! One consortium member of the demo: its own signing key (written to the key directory, so
//! the `bcfl` CLI can act as it afterwards), its own blob store directory, and its own blob
//! server ([`NodeServer`]: blobs, manifests, probes, relays and pulls) on a free loopback port.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::Serialize;

use super::attack::AttackKind;
use crate::ledger::keys::{write_key_pair, PrivateKey, Signer};
use crate::net::blob::BlobStore;
use crate::net::manifest::BlobId;
use crate::net::server::{NodeServer, DEFAULT_MAX_PROBE_BYTES};
use crate::net::transfer::{http_client, Transfers};
use crate::train::data::Dataset;
use crate::train::update::{sha256_hex, Update};

/// Chunk size of the members' stores: the unit relays verify and forward (64 KiB, so that a
/// relay forwards an update of a few hundred kilobytes while it still arrives).
pub const CHUNK_SIZE: u64 = 64 << 10;

/// What the report says about a member.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberInfo {
    /// Display name (also its key name in the key directory).
    pub name: String,
    /// Public key: its identity on chain.
    pub key: String,
    /// Its blob server.
    pub endpoint: String,
    /// Its blob store directory.
    pub store: PathBuf,
    /// Training examples in its shard.
    pub shard: usize,
    /// The attack it runs, if any.
    pub attack: Option<AttackKind>,
}

/// A running member.
#[derive(Debug)]
pub struct Member {
    info: MemberInfo,
    signer: Signer,
    transfers: Arc<Transfers>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    shard: Dataset,
    global: Option<(BlobId, Update)>,
}

impl Member {
    /// Creates the member's key pair `KEY_DIR/NAME.priv`, opens its store under `dir` and
    /// starts its blob server on `127.0.0.1:0`.
    pub async fn start(
        name: &str,
        key_dir: &Path,
        dir: &Path,
        shard: Dataset,
        attack: Option<AttackKind>,
    ) -> anyhow::Result<Self> {
        let key = PrivateKey::random();
        write_key_pair(key_dir, name, &key, false)
            .with_context(|| format!("writing the key of {name}"))?;
        let signer = Signer::new(key);
        let store_dir = dir.join("store");
        let store = Arc::new(
            BlobStore::open(&store_dir, CHUNK_SIZE)
                .with_context(|| format!("opening {}", store_dir.display()))?,
        );
        let transfers = Arc::new(Transfers::new(store, http_client(Duration::from_secs(3))));
        let (addr, server) = NodeServer::new(transfers.clone(), DEFAULT_MAX_PROBE_BYTES)
            .spawn(([127, 0, 0, 1], 0).into())
            .await
            .with_context(|| format!("starting the blob server of {name}"))?;
        let info = MemberInfo {
            name: name.to_owned(),
            key: signer.public_key().as_hex().to_owned(),
            endpoint: format!("http://{addr}"),
            store: store_dir,
            shard: shard.len(),
            attack,
        };
        tracing::info!(member = name, endpoint = %info.endpoint, "member started");
        Ok(Self {
            info,
            signer,
            transfers,
            server,
            shard,
            global: None,
        })
    }

    /// The report's view.
    pub fn info(&self) -> &MemberInfo {
        &self.info
    }

    /// Display name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Public key.
    pub fn key(&self) -> &str {
        &self.info.key
    }

    /// The signing key.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The blob store.
    pub fn store(&self) -> &Arc<BlobStore> {
        self.transfers.store()
    }

    /// The member's transfers (what its server relays and what it fetches).
    pub fn transfers(&self) -> &Arc<Transfers> {
        &self.transfers
    }

    /// The training shard.
    pub fn shard(&self) -> &Dataset {
        &self.shard
    }

    /// The global model this member holds and verified, when it has one.
    pub fn global(&self) -> Option<&(BlobId, Update)> {
        self.global.as_ref()
    }

    /// Loads blob `sha256` from the member's store as its global model, after checking that
    /// the file's SHA-256 is `sha256` (the on-chain commitment the caller read).
    pub fn load_verified_global(&mut self, sha256: &str) -> anyhow::Result<()> {
        let id = BlobId::parse(sha256)?;
        let bytes = self.read_verified(&id)?;
        let update = Update::from_bytes(&bytes)
            .with_context(|| format!("{}: decoding global model {id}", self.name()))?;
        self.global = Some((id, update));
        Ok(())
    }

    /// Holds `update` as the starting model (round 1, before any aggregate exists).
    pub fn set_initial_global(&mut self, id: BlobId, update: Update) {
        self.global = Some((id, update));
    }

    /// The bytes of blob `id` from the store, refused unless they hash to `id`.
    pub fn read_verified(&self, id: &BlobId) -> anyhow::Result<Vec<u8>> {
        let path = self.store().path(id);
        if !path.is_file() {
            bail!("{} does not hold blob {id}", self.name());
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let actual = sha256_hex(&bytes);
        if actual != id.as_str() {
            bail!(
                "{}: blob {id} in the store hashes to {actual}: corrupt, not used",
                self.name()
            );
        }
        Ok(bytes)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_corrupt_blob_in_the_store_is_refused_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let mut member = Member::start(
            "member-1",
            &dir.path().join("keys"),
            &dir.path().join("member-1"),
            Dataset::default(),
            None,
        )
        .await
        .unwrap();
        assert!(dir.path().join("keys/member-1.priv").is_file());
        let mut update = Update::default();
        update
            .tensors
            .insert("w".into(), (vec![2], vec![1.0, -2.0]));
        let bytes = update.to_bytes(crate::train::update::Encoding::F32);
        let id = member.store().insert_bytes(&bytes).await.unwrap();
        member.load_verified_global(id.as_str()).unwrap();
        assert_eq!(member.global().unwrap().1, update);

        // Flip one byte on disk: the blob keeps its name but no longer its content.
        let mut corrupt = bytes.clone();
        *corrupt.last_mut().unwrap() ^= 1;
        std::fs::write(member.store().path(&id), &corrupt).unwrap();
        let err = member.read_verified(&id).unwrap_err().to_string();
        assert!(err.contains("corrupt, not used"), "{err}");
        let other = BlobId::of_bytes(b"never stored");
        let err = member.load_verified_global(other.as_str()).unwrap_err();
        assert!(err.to_string().contains("does not hold"), "{err}");
        // The model it held before stays.
        assert_eq!(member.global().unwrap().0, id);
    }
}
