//! The devnet validator's own secp256k1 key, persisted in the data dir, which signs blocks.

use std::io::Write;
use std::path::Path;

use secp256k1::{Message, PublicKey, Secp256k1, SecretKey, SignOnly};
use sha2::{Digest, Sha256};

use super::error::{LedgerError, Result};

/// The validator key (signs block headers, like a validator's `validator.priv`).
pub struct ValidatorKey {
    secret: SecretKey,
    public_hex: String,
    secp: Secp256k1<SignOnly>,
}

impl ValidatorKey {
    /// Loads `path` (64 hex characters) or creates it with a fresh random key (mode 0600, fsynced).
    pub fn load_or_create(path: &Path) -> Result<Self> {
        let secret = if path.exists() {
            let text = std::fs::read_to_string(path)?;
            let bytes = hex::decode(text.trim()).map_err(|e| LedgerError::Key(e.to_string()))?;
            SecretKey::from_slice(&bytes).map_err(|e| LedgerError::Key(e.to_string()))?
        } else {
            let secret = loop {
                let bytes: [u8; 32] = rand::random();
                if let Ok(key) = SecretKey::from_slice(&bytes) {
                    break key;
                }
            };
            let tmp = path.with_extension("tmp");
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(hex::encode(secret.as_ref()).as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            secret
        };
        let secp = Secp256k1::signing_only();
        let public_hex = hex::encode(PublicKey::from_secret_key(&secp, &secret).serialize());
        Ok(Self {
            secret,
            public_hex,
            secp,
        })
    }

    /// The compressed public key, 66 lowercase hex.
    pub fn public_key(&self) -> &str {
        &self.public_hex
    }

    /// Signs SHA-256 of `bytes`: 128 lowercase hex (compact, low-S, RFC 6979).
    pub fn sign(&self, bytes: &[u8]) -> String {
        let digest = Sha256::digest(bytes);
        let msg = Message::from_slice(&digest).expect("a SHA-256 digest is 32 bytes");
        hex::encode(self.secp.sign_ecdsa(&msg, &self.secret).serialize_compact())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_sdk_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("validator.priv");
        std::fs::write(
            &path,
            "2f1e7b7a130d7ba9da0068b3bb0ba1d79e7e77110302c9f746c3c2a63fe40088\n",
        )
        .unwrap();
        let key = ValidatorKey::load_or_create(&path).unwrap();
        assert_eq!(
            key.public_key(),
            "026a2c795a9776f75464aa3bda3534c3154a6e91b357b1181d3f515110f84b67c5"
        );
        assert_eq!(key.sign(b"test"), "5195115d9be2547b720ee74c23dd841842875db6eae1f5da8605b050a49e702b4aa83be72ab7e3cb20f17c657011b49f4c8632be2745ba4de79e6aa05da57b35");

        let fresh = dir.path().join("other.priv");
        let a = ValidatorKey::load_or_create(&fresh).unwrap();
        let b = ValidatorKey::load_or_create(&fresh).unwrap();
        assert_eq!(a.public_key(), b.public_key());
    }
}
