//! The error type of the language-model module: reading GGUF files and Hugging Face
//! checkpoints, building the tokenizer, loading and running the decoder.

use std::path::PathBuf;

/// A failure of the language-model module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file does not start with the GGUF magic.
    #[error("not a GGUF file: magic {found:02x?}, expected \"GGUF\"")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// The GGUF version is not 2 or 3.
    #[error("GGUF version {0} is not supported (2 and 3 are)")]
    UnsupportedVersion(u32),
    /// The file ends before a field it announces.
    #[error(
        "truncated GGUF file: {what} needs {needed} bytes at offset {offset}, the file has {len}"
    )]
    Truncated {
        /// What was being read.
        what: String,
        /// Where it starts.
        offset: u64,
        /// How many bytes it needs.
        needed: u64,
        /// The file's length.
        len: u64,
    },
    /// A metadata value or tensor carries a type id this reader does not know.
    #[error("unknown {what} type {id}")]
    UnknownType {
        /// `metadata value` or `tensor`.
        what: &'static str,
        /// The type id.
        id: u32,
    },
    /// A tensor's type is known but cannot be dequantized here.
    #[error("tensor {tensor}: quantization {kind} is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1 are)")]
    UnsupportedQuantization {
        /// The tensor's name.
        tensor: String,
        /// The type's name.
        kind: String,
    },
    /// The file is structurally wrong (bad string, bad shape, overlapping tensor...).
    #[error("malformed GGUF file: {0}")]
    Malformed(String),
    /// A metadata key the model needs is absent or has the wrong type.
    #[error("metadata {key}: {problem}")]
    Metadata {
        /// The key.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A tensor the model needs is absent or has the wrong shape.
    #[error("tensor {name}: {problem}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The model's configuration is inconsistent or unsupported.
    #[error("invalid model configuration: {0}")]
    Config(String),
    /// The tokenizer could not be built or failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A Hugging Face checkpoint directory (or one of its files) is unreadable, inconsistent
    /// or describes a model this decoder does not run.
    #[error("checkpoint {path}: {problem}")]
    Checkpoint {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// An adapter folder is unreadable or inconsistent.
    #[error("adapter {dir}: {problem}")]
    Adapter {
        /// The folder.
        dir: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// The language-model module's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn adapter(dir: &std::path::Path, problem: impl Into<String>) -> Self {
        Self::Adapter {
            dir: dir.to_path_buf(),
            problem: problem.into(),
        }
    }

    pub(crate) fn checkpoint(path: &std::path::Path, problem: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }

    pub(crate) fn metadata(key: &str, problem: impl Into<String>) -> Self {
        Self::Metadata {
            key: key.to_owned(),
            problem: problem.into(),
        }
    }

    pub(crate) fn tensor(name: &str, problem: impl Into<String>) -> Self {
        Self::Tensor {
            name: name.to_owned(),
            problem: problem.into(),
        }
    }
}
