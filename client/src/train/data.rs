//! Labelled text: the Medical Abstracts corpus, and any CSV or JSON-lines file with named text
//! and label columns (so mtsamples' `transcription` / `medical_specialty` works as is).
//!
//! Labels are strings in files and class indices in a [`Dataset`]: the classes are the distinct
//! label strings, sorted numerically when all are integers and alphabetically otherwise, unless
//! the caller imposes a list (to evaluate a saved model on a new file).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// Folder of the Medical Abstracts corpus in a data directory.
pub const MEDICAL_ABSTRACTS: &str = "medical-abstracts";

/// One labelled text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// The text.
    pub text: String,
    /// Class index into [`Dataset::label_names`].
    pub label: usize,
}

/// Labelled texts and the names of their classes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    /// The examples, in file order.
    pub examples: Vec<Example>,
    /// Class names; class `i` is `label_names[i]`.
    pub label_names: Vec<String>,
}

/// Where the text and the label are in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Columns {
    /// Column (CSV header or JSON key) of the text.
    pub text: String,
    /// Column of the label.
    pub label: String,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// Number of classes.
    pub fn num_labels(&self) -> usize {
        self.label_names.len()
    }

    /// Examples per class.
    pub fn label_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_labels()];
        for e in &self.examples {
            counts[e.label] += 1;
        }
        counts
    }

    /// The examples at `indices`, with the same classes.
    pub fn subset(&self, indices: &[usize]) -> Self {
        Self {
            examples: indices.iter().map(|&i| self.examples[i].clone()).collect(),
            label_names: self.label_names.clone(),
        }
    }

    /// Builds a dataset from (text, label string) rows. With `labels`, every label must be one
    /// of them and class `i` is `labels[i]`; otherwise the classes are the distinct labels
    /// (numeric order when all are integers). Rows with an empty text or label are skipped.
    pub fn from_rows(rows: Vec<(String, String)>, labels: Option<&[String]>) -> Result<Self> {
        let rows: Vec<(String, String)> = rows
            .into_iter()
            .map(|(t, l)| (t, l.trim().to_string()))
            .filter(|(t, l)| !t.trim().is_empty() && !l.is_empty())
            .collect();
        let label_names: Vec<String> = match labels {
            Some(names) => names.to_vec(),
            None => {
                let distinct: BTreeSet<&str> = rows.iter().map(|(_, l)| l.as_str()).collect();
                let mut names: Vec<String> = distinct.into_iter().map(String::from).collect();
                if names.iter().all(|n| n.parse::<i64>().is_ok()) {
                    names.sort_by_key(|n| n.parse::<i64>().unwrap_or_default());
                }
                names
            }
        };
        let index: BTreeMap<&str, usize> = label_names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let examples = rows
            .iter()
            .map(|(text, label)| {
                let label = *index.get(label.as_str()).ok_or_else(|| {
                    Error::Data(format!("label {label:?} is not one of {label_names:?}"))
                })?;
                Ok(Example {
                    text: text.clone(),
                    label,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if examples.is_empty() {
            return Err(Error::Data("no labelled rows".into()));
        }
        Ok(Self {
            examples,
            label_names,
        })
    }

    /// Reads a CSV (`.csv`, `.tsv`) or JSON-lines (any other extension) file.
    pub fn from_file(path: &Path, columns: &Columns, labels: Option<&[String]>) -> Result<Self> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let rows = match extension.as_str() {
            "csv" => read_csv(path, b',', columns)?,
            "tsv" => read_csv(path, b'\t', columns)?,
            _ => read_json_lines(path, columns)?,
        };
        Self::from_rows(rows, labels)
    }

    /// Writes the examples as a CSV file with columns `label` (the class name) and `text`,
    /// creating the parent directory: [`Self::from_file`] reads it back.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let csv_error = |source| Error::Csv {
            path: PathBuf::from(path),
            source,
        };
        let mut writer = csv::Writer::from_path(path).map_err(csv_error)?;
        writer.write_record(["label", "text"]).map_err(csv_error)?;
        for e in &self.examples {
            writer
                .write_record([self.label_names[e.label].as_str(), e.text.as_str()])
                .map_err(csv_error)?;
        }
        writer.flush().map_err(|e| Error::io(path, e))
    }

    /// The Medical Abstracts corpus in `data_dir/medical-abstracts/`: classes 1-5 named from
    /// `medical_tc_labels.csv`.
    pub fn medical_abstracts(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join(MEDICAL_ABSTRACTS);
        let names = read_csv(
            &dir.join("medical_tc_labels.csv"),
            b',',
            &Columns {
                text: "condition_name".into(),
                label: "condition_label".into(),
            },
        )?;
        let codes: Vec<String> = names.iter().map(|(_, code)| code.clone()).collect();
        let mut data = Self::from_file(
            &dir.join("medical_abstracts.csv"),
            &Columns {
                text: "medical_abstract".into(),
                label: "condition_label".into(),
            },
            Some(&codes),
        )?;
        data.label_names = names.into_iter().map(|(name, _)| name).collect();
        Ok(data)
    }
}

fn read_csv(path: &Path, delimiter: u8, columns: &Columns) -> Result<Vec<(String, String)>> {
    let csv_error = |source| Error::Csv {
        path: PathBuf::from(path),
        source,
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_path(path)
        .map_err(csv_error)?;
    let headers = reader.headers().map_err(csv_error)?.clone();
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| {
                Error::Data(format!(
                    "{}: no column {name:?} (columns: {:?})",
                    path.display(),
                    headers.iter().collect::<Vec<_>>()
                ))
            })
    };
    let (text, label) = (find(&columns.text)?, find(&columns.label)?);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        rows.push((
            record.get(text).unwrap_or_default().to_string(),
            record.get(label).unwrap_or_default().to_string(),
        ));
    }
    Ok(rows)
}

fn read_json_lines(path: &Path, columns: &Columns) -> Result<Vec<(String, String)>> {
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let field = |row: &serde_json::Value, name: &str, line: usize| -> Result<String> {
        match row.get(name) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(serde_json::Value::Null) | None => Err(Error::Data(format!(
                "{}:{line}: no field {name:?}",
                path.display()
            ))),
            Some(other) => Ok(other.to_string()),
        }
    };
    let mut rows = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let row: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::json(format!("{}:{}", path.display(), i + 1), e))?;
        rows.push((
            field(&row, &columns.text, i + 1)?,
            field(&row, &columns.label, i + 1)?,
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Columns {
        Columns {
            text: "transcription".into(),
            label: "medical_specialty".into(),
        }
    }

    #[test]
    fn csv_and_json_lines_give_the_same_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let csv_path = dir.path().join("m.csv");
        fs::write(
            &csv_path,
            "id,transcription,medical_specialty\n1,\"chest pain, ECG\",Cardiology\n2,knee scope,Orthopedic\n3,,Cardiology\n4,stent,Cardiology\n",
        )
        .unwrap();
        let jsonl_path = dir.path().join("m.jsonl");
        fs::write(
            &jsonl_path,
            "{\"transcription\":\"chest pain, ECG\",\"medical_specialty\":\"Cardiology\"}\n\n{\"transcription\":\"knee scope\",\"medical_specialty\":\"Orthopedic\"}\n{\"transcription\":\"stent\",\"medical_specialty\":\"Cardiology\"}\n",
        )
        .unwrap();
        let from_csv = Dataset::from_file(&csv_path, &columns(), None).unwrap();
        let from_jsonl = Dataset::from_file(&jsonl_path, &columns(), None).unwrap();
        assert_eq!(from_csv, from_jsonl);
        // Written back (with commas and quotes in a text) and read again: the same dataset.
        let mut tricky = from_csv.clone();
        tricky.examples[1].text = "a \"quoted\", text".into();
        let written = dir.path().join("out/w.csv");
        tricky.write_csv(&written).unwrap();
        let plain = Columns {
            text: "text".into(),
            label: "label".into(),
        };
        let read = Dataset::from_file(&written, &plain, Some(&tricky.label_names)).unwrap();
        assert_eq!(read, tricky);
        assert_eq!(from_csv.label_names, ["Cardiology", "Orthopedic"]);
        assert_eq!(from_csv.label_counts(), [2, 1]);
        assert_eq!(from_csv.examples[0].text, "chest pain, ECG");
    }

    #[test]
    fn numeric_labels_sort_numerically_and_imposed_labels_are_enforced() {
        let rows = vec![("a".into(), "10".into()), ("b".into(), "9".into())];
        let data = Dataset::from_rows(rows.clone(), None).unwrap();
        assert_eq!(data.label_names, ["9", "10"]);
        let imposed = ["10".to_string()];
        assert!(Dataset::from_rows(rows, Some(&imposed)).is_err());
    }

    #[test]
    fn a_missing_column_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        fs::write(&path, "text,label\nx,1\n").unwrap();
        let err = Dataset::from_file(&path, &columns(), None).unwrap_err();
        assert!(err.to_string().contains("transcription"), "{err}");
    }
}
