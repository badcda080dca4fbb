//! Where a command's labelled data comes from ([`DataSource`]): a file, or the Medical
//! Abstracts corpus in a data directory, with an optional cut to the first examples.
//!
//! Every command that reads labelled data (`bcfl train`, `eval`, `fl simulate`, `data split`,
//! `model init`, `demo`) loads it through this type; the command line builds it from
//! `--data FILE` or `--data-dir DIR`.
//!
//! ```no_run
//! use bcfl_client::train::source::{DataOrigin, DataSource};
//!
//! # fn main() -> Result<(), bcfl_client::train::Error> {
//! let source = DataSource {
//!     origin: DataOrigin::Corpus { dir: "data".into(), labels_file: None },
//!     limit: Some(100),
//! };
//! let data = source.load(None)?;
//! assert!(data.len() <= 100);
//! # Ok(())
//! # }
//! ```

use std::path::PathBuf;

use super::data::{Columns, Dataset, MEDICAL_ABSTRACTS, MEDICAL_ABSTRACTS_FILE};
use super::{Error, Result};

/// Where the examples are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataOrigin {
    /// A CSV (.csv, .tsv) or JSON-lines file of labelled texts; a file in the Medical
    /// Abstracts format (columns condition_label, medical_abstract) is read as it is, its
    /// numeric labels named from `labels_file` or the medical_tc_labels.csv beside it.
    File {
        /// The file.
        path: PathBuf,
        /// Where the text and the label are.
        columns: Columns,
        /// Class names: a CSV mapping label codes to names, in order.
        labels_file: Option<PathBuf>,
    },
    /// The Medical Abstracts corpus in `dir/medical-abstracts/`.
    Corpus {
        /// The data directory.
        dir: PathBuf,
        /// Class names instead of the corpus's own labels file.
        labels_file: Option<PathBuf>,
    },
}

/// Labelled data to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSource {
    /// Where the examples are.
    pub origin: DataOrigin,
    /// Only the first N examples (quick runs).
    pub limit: Option<usize>,
}

impl DataSource {
    /// Loads the dataset (checking its classes against `labels` when given) and keeps the
    /// first [`Self::limit`] examples.
    pub fn load(&self, labels: Option<&[String]>) -> Result<Dataset> {
        let mut data = match &self.origin {
            DataOrigin::File {
                path,
                columns,
                labels_file,
            } => Dataset::load(path, columns, labels_file.as_deref(), labels)?,
            DataOrigin::Corpus { dir, labels_file } => {
                let data = match labels_file {
                    Some(names) => Dataset::load(
                        &dir.join(MEDICAL_ABSTRACTS).join(MEDICAL_ABSTRACTS_FILE),
                        &Columns::medical_abstracts(),
                        Some(names),
                        None,
                    )?,
                    None => Dataset::medical_abstracts(dir)?,
                };
                if let Some(names) = labels {
                    if names != data.label_names {
                        return Err(Error::Data(format!(
                            "the model's classes {names:?} are not Medical Abstracts'"
                        )));
                    }
                }
                data
            }
        };
        if let Some(limit) = self.limit {
            data.examples.truncate(limit);
        }
        Ok(data)
    }
}
