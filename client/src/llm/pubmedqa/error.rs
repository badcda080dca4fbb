//! The error type of the PubMedQA task: reading its files, drawing subsets and partitions,
//! building prompts and scoring them.

use std::path::PathBuf;

/// A failure to read PubMedQA, split it or build its prompts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not what PubMedQA publishes (bad JSON, missing field, unknown answer...).
    #[error("{path}: {problem}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The test split names a question PQA-L lacks, or gives it another answer.
    #[error("{path}: {problem}")]
    Inconsistent {
        /// The test-split file.
        path: PathBuf,
        /// Which question and how.
        problem: String,
    },
    /// A subset or partition cannot be drawn as asked.
    #[error("split: {0}")]
    Split(String),
    /// An answer is not a single token of the model's vocabulary.
    #[error("answer {answer:?} is {} tokens in this tokenizer ({ids:?}), not one", ids.len())]
    AnswerNotOneToken {
        /// The answer.
        answer: &'static str,
        /// Its ids.
        ids: Vec<u32>,
    },
    /// Even without any context, a question's prompt is longer than the limit.
    #[error(
        "question {pmid}: its prompt is {tokens} tokens without context, over the {limit} allowed"
    )]
    PromptTooLong {
        /// The question.
        pmid: String,
        /// Tokens of the prompt with an empty context.
        tokens: usize,
        /// The limit.
        limit: usize,
    },
    /// The tokenizer or the model failed.
    #[error(transparent)]
    Model(#[from] crate::llm::Error),
}

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        Self::Model(e.into())
    }
}

/// This module's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
