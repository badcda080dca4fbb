//! Keys and signing in Sawtooth's format.
//!
//! Sawtooth signs with secp256k1 ECDSA over the SHA-256 of the exact header bytes, and writes
//! 64-byte compact, low-S signatures as 128 lowercase hex characters. Public keys are 33-byte
//! compressed SEC1 points (66 hex characters). Key files hold the hex text plus a newline: a
//! private key file (`NAME.priv`, mode 0600) has 64 hex characters, a public key file
//! (`NAME.pub`) 66. These are the files `sawtooth keygen` writes, so keys are interchangeable with
//! the Sawtooth CLI.
//!
//! ```
//! use bcfl_ledger::keys::{PrivateKey, Signer};
//!
//! let key = PrivateKey::from_hex(
//!     "2f1e7b7a130d7ba9da0068b3bb0ba1d79e7e77110302c9f746c3c2a63fe40088",
//! ).unwrap();
//! let signer = Signer::new(key);
//! let signature = signer.sign(b"test");
//! assert!(signer.public_key().verify(b"test", &signature));
//! ```

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;
use secp256k1::ecdsa::Signature;
use secp256k1::{All, Message, Secp256k1};
use sha2::{Digest, Sha256};

/// Errors from parsing, reading or writing keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not a key of the expected form.
    #[error("invalid {kind} key: {reason}")]
    Invalid {
        /// "private" or "public".
        kind: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A key file exists and overwriting was not asked for.
    #[error("key file {0} already exists (use --force to overwrite)")]
    Exists(PathBuf),
    /// A private key file that its group or others may access.
    #[error(
        "private key file {} is accessible by group or others (mode {mode:04o}); \
         it must be readable by its owner only: run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file longer than any key file.
    #[error("key file {} is longer than {max} bytes: not a key file", path.display())]
    TooLong {
        /// The file.
        path: PathBuf,
        /// [`MAX_KEY_FILE_BYTES`].
        max: u64,
    },
}

/// The most bytes read from a key file: a key and a newline are 65 or 67 bytes, so this leaves
/// room for whitespace and stops reads of devices and huge files at once.
pub const MAX_KEY_FILE_BYTES: u64 = 512;

/// Reads a key file's text: at most [`MAX_KEY_FILE_BYTES`]; for a private key, only from a
/// file its group and others cannot access (checked on the open file, so a swap after the
/// check cannot slip in another file).
fn read_key_file(path: &Path, private: bool) -> Result<String, KeyError> {
    use std::io::Read;
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::File::open(path).map_err(io)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(io)?.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyError::TooLong {
            path: path.to_path_buf(),
            max: MAX_KEY_FILE_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|_| KeyError::Invalid {
        kind: if private { "private" } else { "public" },
        reason: format!("{} is not text", path.display()),
    })
}

fn invalid_key(kind: &'static str, reason: String) -> KeyError {
    KeyError::Invalid { kind, reason }
}

/// The bytes of a key written as exactly `hex_len` hex characters (surrounding whitespace, as in
/// key files, is ignored).
fn key_bytes(text: &str, kind: &'static str, hex_len: usize) -> Result<Vec<u8>, KeyError> {
    let text = text.trim();
    if text.len() != hex_len {
        return Err(invalid_key(
            kind,
            format!("expected {hex_len} hex characters, got {}", text.len()),
        ));
    }
    hex::decode(text).map_err(|e| invalid_key(kind, e.to_string()))
}

/// A secp256k1 private key. Its `Debug` output never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey(secp256k1::SecretKey);

impl PrivateKey {
    /// Parses 64 hex characters (surrounding whitespace is ignored, as in key files).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = key_bytes(text, "private", 64)?;
        secp256k1::SecretKey::from_slice(&bytes)
            .map(Self)
            .map_err(|e| invalid_key("private", e.to_string()))
    }

    /// A fresh random key from the operating system's generator.
    pub fn random() -> Self {
        let mut rng = rand::rngs::OsRng;
        loop {
            let mut bytes = [0u8; 32];
            rng.fill_bytes(&mut bytes);
            // Fails only for zero or values >= the group order (probability ~2^-128).
            if let Ok(key) = secp256k1::SecretKey::from_slice(&bytes) {
                return Self(key);
            }
        }
    }

    /// The 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_ref())
    }

    /// Reads a private key file: refused when its group or others may access it
    /// ([`KeyError::Exposed`]) or when it is longer than [`MAX_KEY_FILE_BYTES`].
    pub fn read_file(path: &Path) -> Result<Self, KeyError> {
        Self::from_hex(&read_key_file(path, true)?)
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        let secp = Secp256k1::signing_only();
        PublicKey::from_inner(secp256k1::PublicKey::from_secret_key(&secp, &self.0))
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

/// A compressed secp256k1 public key, kept with its 66-character hex form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    key: secp256k1::PublicKey,
    hex: String,
}

impl PublicKey {
    fn from_inner(key: secp256k1::PublicKey) -> Self {
        let hex = hex::encode(key.serialize());
        Self { key, hex }
    }

    /// Parses 66 hex characters (a compressed point); whitespace around it is ignored.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = key_bytes(text, "public", 66)?;
        secp256k1::PublicKey::from_slice(&bytes)
            .map(Self::from_inner)
            .map_err(|e| invalid_key("public", e.to_string()))
    }

    /// Reads a public key file (at most [`MAX_KEY_FILE_BYTES`]).
    pub fn read_file(path: &Path) -> Result<Self, KeyError> {
        Self::from_hex(&read_key_file(path, false)?)
    }

    /// The 66 lowercase hex characters.
    pub fn as_hex(&self) -> &str {
        &self.hex
    }

    /// Whether `signature_hex` is this key's valid (low-S) signature of SHA-256(`message`).
    pub fn verify(&self, message: &[u8], signature_hex: &str) -> bool {
        let Ok(bytes) = hex::decode(signature_hex) else {
            return false;
        };
        let Ok(signature) = Signature::from_compact(&bytes) else {
            return false;
        };
        // Building a context costs milliseconds (its tables): one for the process.
        static SECP: std::sync::OnceLock<Secp256k1<secp256k1::VerifyOnly>> =
            std::sync::OnceLock::new();
        SECP.get_or_init(Secp256k1::verification_only)
            .verify_ecdsa(&digest(message), &signature, &self.key)
            .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.hex)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex)
    }
}

fn digest(message: &[u8]) -> Message {
    let hash = Sha256::digest(message);
    Message::from_slice(&hash).expect("a SHA-256 digest is 32 bytes")
}

/// Signs bytes the way Sawtooth does: secp256k1 over SHA-256, compact low-S hex.
#[derive(Clone)]
pub struct Signer {
    key: PrivateKey,
    public: PublicKey,
    secp: Secp256k1<All>,
}

impl Signer {
    /// A signer for this private key.
    pub fn new(key: PrivateKey) -> Self {
        let public = key.public_key();
        Self {
            key,
            public,
            secp: Secp256k1::new(),
        }
    }

    /// A signer from 64 hex characters.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        PrivateKey::from_hex(text).map(Self::new)
    }

    /// A signer from a private key file.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        PrivateKey::read_file(path).map(Self::new)
    }

    /// The signer's public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The 128-hex compact signature of SHA-256(`message`), deterministic (RFC 6979) and low-S.
    pub fn sign(&self, message: &[u8]) -> String {
        let mut signature = self.secp.sign_ecdsa(&digest(message), &self.key.0);
        // libsecp256k1 already produces low-S signatures; normalizing keeps that explicit.
        signature.normalize_s();
        hex::encode(signature.serialize_compact())
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("public_key", &self.public)
            .finish_non_exhaustive()
    }
}

/// The two files of a key pair written by [`write_key_pair`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    /// `NAME.priv`, mode 0600 on Unix.
    pub private: PathBuf,
    /// `NAME.pub`.
    pub public: PathBuf,
}

/// The file paths of key pair `name` in `dir`.
pub fn key_files(dir: &Path, name: &str) -> KeyFiles {
    KeyFiles {
        private: dir.join(format!("{name}.priv")),
        public: dir.join(format!("{name}.pub")),
    }
}

/// Writes `key` as `dir/NAME.priv` (mode 0600) and `dir/NAME.pub`, creating `dir` if needed.
///
/// Refuses with [`KeyError::Exists`] when either file exists, unless `force` is set.
pub fn write_key_pair(
    dir: &Path,
    name: &str,
    key: &PrivateKey,
    force: bool,
) -> Result<KeyFiles, KeyError> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(KeyError::Invalid {
            kind: "private",
            reason: format!("bad key name {name:?}: use a plain file name"),
        });
    }
    let files = key_files(dir, name);
    if !force {
        for path in [&files.private, &files.public] {
            // symlink_metadata: a dangling symlink exists too.
            if path.symlink_metadata().is_ok() {
                return Err(KeyError::Exists(path.clone()));
            }
        }
    }
    fs::create_dir_all(dir).map_err(|source| KeyError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    write_text(&files.private, &key.to_hex(), 0o600, force)?;
    write_text(&files.public, key.public_key().as_hex(), 0o644, force)?;
    Ok(files)
}

/// Writes `text` and a newline to a file created exclusively with `mode` (never through a
/// symlink). With `replace`, the file is written under a temporary name and renamed over
/// `path`, which replaces a symlink at `path` rather than writing where it points.
fn write_text(path: &Path, text: &str, mode: u32, replace: bool) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let target = if replace {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
    } else {
        path.to_path_buf()
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode).custom_flags(libc_o_nofollow());
    }
    #[cfg(not(unix))]
    let _ = mode;
    let written = options.open(&target).and_then(|mut file| {
        writeln!(file, "{text}")?;
        file.sync_all()
    });
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && !replace => {
            return Err(KeyError::Exists(path.to_path_buf()))
        }
        Err(e) => {
            if replace {
                let _ = fs::remove_file(&target);
            }
            return Err(io(e));
        }
        Ok(()) => {}
    }
    if replace {
        fs::rename(&target, path).map_err(|e| {
            let _ = fs::remove_file(&target);
            io(e)
        })?;
    }
    Ok(())
}

/// `O_NOFOLLOW`, belt and braces beside `O_EXCL` (which already refuses a symlink).
#[cfg(unix)]
fn libc_o_nofollow() -> i32 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        0o400000
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        0x0100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE: &str = "2f1e7b7a130d7ba9da0068b3bb0ba1d79e7e77110302c9f746c3c2a63fe40088";
    const PUBLIC: &str = "026a2c795a9776f75464aa3bda3534c3154a6e91b357b1181d3f515110f84b67c5";
    const SIGNATURE: &str = "5195115d9be2547b720ee74c23dd841842875db6eae1f5da8605b050a49e702b\
                             4aa83be72ab7e3cb20f17c657011b49f4c8632be2745ba4de79e6aa05da57b35";

    #[test]
    fn sawtooth_test_vector() {
        let signer = Signer::from_hex(PRIVATE).unwrap();
        assert_eq!(signer.public_key().as_hex(), PUBLIC);
        assert_eq!(signer.sign(b"test"), SIGNATURE);
        let public = PublicKey::from_hex(PUBLIC).unwrap();
        assert!(public.verify(b"test", SIGNATURE));
        assert!(!public.verify(b"tesu", SIGNATURE));
    }

    #[test]
    fn rejects_bad_keys() {
        assert!(PrivateKey::from_hex(&PRIVATE[2..]).is_err());
        assert!(PrivateKey::from_hex(&"0".repeat(64)).is_err());
        assert!(PrivateKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(PublicKey::from_hex(&PUBLIC[..64]).is_err());
        assert!(PublicKey::from_hex(&format!("05{}", &PUBLIC[2..])).is_err());
    }

    #[test]
    fn high_s_signatures_do_not_verify() {
        let signer = Signer::from_hex(PRIVATE).unwrap();
        let signature = hex::decode(signer.sign(b"test")).unwrap();
        // s' = n - s is the same signature in high-S form.
        let n = hex::decode("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
            .unwrap();
        let mut high = signature[..32].to_vec();
        let mut borrow = 0i16;
        let mut s = vec![0u8; 32];
        for i in (0..32).rev() {
            let d = i16::from(n[i]) - i16::from(signature[32 + i]) - borrow;
            borrow = i16::from(d < 0);
            s[i] = d.rem_euclid(256) as u8;
        }
        high.extend(s);
        assert!(!signer.public_key().verify(b"test", &hex::encode(high)));
    }

    #[test]
    fn key_files_round_trip_with_modes() {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::random();
        let files = write_key_pair(dir.path(), "alice", &key, false).unwrap();
        let private_text = fs::read_to_string(&files.private).unwrap();
        assert_eq!(private_text.len(), 65);
        assert!(private_text.ends_with('\n'));
        assert_eq!(fs::read_to_string(&files.public).unwrap().len(), 67);
        assert_eq!(PrivateKey::read_file(&files.private).unwrap(), key);
        assert_eq!(
            PublicKey::read_file(&files.public).unwrap(),
            key.public_key()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&files.private).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let first = PrivateKey::random();
        let files = write_key_pair(dir.path(), "bob", &first, false).unwrap();
        let second = PrivateKey::random();
        let err = write_key_pair(dir.path(), "bob", &second, false).unwrap_err();
        assert!(matches!(err, KeyError::Exists(ref p) if *p == files.private));
        assert_eq!(PrivateKey::read_file(&files.private).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&files.private, fs::Permissions::from_mode(0o644)).unwrap();
        }
        write_key_pair(dir.path(), "bob", &second, true).unwrap();
        assert_eq!(PrivateKey::read_file(&files.private).unwrap(), second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&files.private).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// Issue "Trust and hardening", item 11: a private key others can read is refused like
    /// ssh refuses it, with the fix in the message.
    #[cfg(unix)]
    #[test]
    fn refuses_private_keys_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let files = write_key_pair(dir.path(), "carol", &PrivateKey::random(), false).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            fs::set_permissions(&files.private, fs::Permissions::from_mode(mode)).unwrap();
            let err = PrivateKey::read_file(&files.private).unwrap_err();
            assert!(
                matches!(err, KeyError::Exposed { mode: m, .. } if m == mode),
                "{err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains(&files.private.display().to_string()),
                "{text}"
            );
            assert!(
                text.contains(&format!("chmod 600 {}", files.private.display())),
                "{text}"
            );
            assert!(Signer::from_file(&files.private).is_err());
        }
        fs::set_permissions(&files.private, fs::Permissions::from_mode(0o400)).unwrap();
        PrivateKey::read_file(&files.private).unwrap();
        // Public keys are public.
        fs::set_permissions(&files.public, fs::Permissions::from_mode(0o644)).unwrap();
        PublicKey::read_file(&files.public).unwrap();
    }

    /// `--key /dev/zero` used to read for ever: reads stop after a few hundred bytes.
    #[cfg(unix)]
    #[test]
    fn key_reads_are_bounded() {
        use std::os::unix::fs::PermissionsExt;
        let err = PublicKey::read_file(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(err, KeyError::TooLong { max: 512, .. }), "{err:?}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.priv");
        fs::write(&big, format!("{PRIVATE}\n{}", " ".repeat(10_000))).unwrap();
        fs::set_permissions(&big, fs::Permissions::from_mode(0o600)).unwrap();
        let err = PrivateKey::read_file(&big).unwrap_err();
        assert!(
            err.to_string().contains("is longer than 512 bytes"),
            "{err}"
        );
    }

    /// Writing a key never follows a symlink: not without --force (the name exists) and not
    /// with it (the link itself is replaced, its target untouched).
    #[cfg(unix)]
    #[test]
    fn writing_keys_never_follows_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious\n").unwrap();
        let keys = dir.path().join("keys");
        fs::create_dir(&keys).unwrap();
        std::os::unix::fs::symlink(&victim, keys.join("eve.priv")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), keys.join("dan.priv")).unwrap();
        let key = PrivateKey::random();
        let err = write_key_pair(&keys, "eve", &key, false).unwrap_err();
        assert!(matches!(err, KeyError::Exists(_)), "{err:?}");
        let err = write_key_pair(&keys, "dan", &key, false).unwrap_err();
        assert!(matches!(err, KeyError::Exists(_)), "{err:?}");
        assert!(!dir.path().join("nowhere").exists());
        let files = write_key_pair(&keys, "eve", &key, true).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(!files
            .private
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(PrivateKey::read_file(&files.private).unwrap(), key);
        let left: Vec<_> = fs::read_dir(&keys)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 3, "no temporary file is left: {left:?}");
    }

    #[test]
    fn rejects_path_like_names() {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::random();
        assert!(write_key_pair(dir.path(), "../evil", &key, false).is_err());
        assert!(write_key_pair(dir.path(), "", &key, false).is_err());
    }
}
