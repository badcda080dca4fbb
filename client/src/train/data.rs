//! Labelled text: the Medical Abstracts corpus, and any CSV or JSON-lines file with named text
//! and label columns (so mtsamples' `transcription` / `medical_specialty` works as is).
//!
//! Labels are strings in files and class indices in a [`Dataset`]: the classes are the distinct
//! label strings, sorted numerically when all are integers and alphabetically otherwise, unless
//! the caller imposes a list (to evaluate a saved model on a new file).
//!
//! A labels file ([`LabelNames`], in the format of the corpus's `medical_tc_labels.csv`: a header
//! and rows `code,name`) maps label codes to class names; with one, the classes are its names in
//! its order. [`Dataset::load`] reads a file in the corpus's own format as it is: when the file
//! has the Medical Abstracts columns (`condition_label`, numeric 1-5, and `medical_abstract`)
//! instead of the requested ones, it reads those, with the labels file given or else the sibling
//! `medical_tc_labels.csv`, and refuses numeric codes it has no names for.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// Folder of the Medical Abstracts corpus in a data directory.
pub const MEDICAL_ABSTRACTS: &str = "medical-abstracts";
/// The Medical Abstracts data file in [`MEDICAL_ABSTRACTS`].
pub const MEDICAL_ABSTRACTS_FILE: &str = "medical_abstracts.csv";
/// The Medical Abstracts labels file, next to [`MEDICAL_ABSTRACTS_FILE`].
pub const MEDICAL_ABSTRACTS_LABELS: &str = "medical_tc_labels.csv";
/// Text column of the Medical Abstracts data file.
pub const MEDICAL_ABSTRACTS_TEXT: &str = "medical_abstract";
/// Label column (numeric codes 1-5) of the Medical Abstracts data and labels files.
pub const MEDICAL_ABSTRACTS_LABEL: &str = "condition_label";
/// Name column of the Medical Abstracts labels file.
pub const MEDICAL_ABSTRACTS_NAME: &str = "condition_name";

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

impl Columns {
    /// The columns of the Medical Abstracts data file.
    pub fn medical_abstracts() -> Self {
        Self {
            text: MEDICAL_ABSTRACTS_TEXT.into(),
            label: MEDICAL_ABSTRACTS_LABEL.into(),
        }
    }
}

/// The contents of a labels file: the label codes a data file uses and the class names they
/// stand for, in class order.
///
/// The file is a CSV with a header: the columns `condition_label` and `condition_name` when it
/// has them (the Medical Abstracts `medical_tc_labels.csv`), otherwise its first two columns
/// (code, name). Codes and names are trimmed and must be distinct and non-empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelNames {
    /// Label codes as they appear in data files (`"1"`).
    pub codes: Vec<String>,
    /// Class names (`"neoplasms"`); class `i` has code `codes[i]` and name `names[i]`.
    pub names: Vec<String>,
}

impl LabelNames {
    /// Reads a labels file.
    pub fn read(path: &Path) -> Result<Self> {
        let csv_error = |source| Error::Csv {
            path: PathBuf::from(path),
            source,
        };
        let mut reader = csv::ReaderBuilder::new()
            .from_path(path)
            .map_err(csv_error)?;
        let headers = reader.headers().map_err(csv_error)?.clone();
        let named = |name: &str| headers.iter().position(|h| h.trim() == name);
        let (code, name) = match (
            named(MEDICAL_ABSTRACTS_LABEL),
            named(MEDICAL_ABSTRACTS_NAME),
        ) {
            (Some(code), Some(name)) => (code, name),
            _ if headers.len() >= 2 => (0, 1),
            _ => {
                return Err(Error::Data(format!(
                    "{}: a labels file needs two columns, code and name (columns: {:?})",
                    path.display(),
                    headers.iter().collect::<Vec<_>>()
                )))
            }
        };
        let (mut codes, mut names) = (Vec::new(), Vec::new());
        for record in reader.records() {
            let record = record.map_err(csv_error)?;
            let field = |i: usize| record.get(i).unwrap_or_default().trim().to_string();
            let (c, n) = (field(code), field(name));
            if c.is_empty() && n.is_empty() {
                continue;
            }
            if c.is_empty() || n.is_empty() || codes.contains(&c) || names.contains(&n) {
                return Err(Error::Data(format!(
                    "{}: label code {c:?} / name {n:?} is empty or repeated",
                    path.display()
                )));
            }
            codes.push(c);
            names.push(n);
        }
        if codes.is_empty() {
            return Err(Error::Data(format!("{}: no labels", path.display())));
        }
        Ok(Self { codes, names })
    }

    /// The class name of a label as found in a data file: the label itself when it is one of
    /// the names (a file written by [`Dataset::write_csv`]), otherwise the name of its code.
    pub fn name_of<'a>(&'a self, label: &'a str) -> Option<&'a str> {
        if self.names.iter().any(|n| n == label) {
            return Some(label);
        }
        let i = self.codes.iter().position(|c| c == label)?;
        Some(&self.names[i])
    }

    /// Writes a labels file with a header `label,name` that [`Self::read`] reads back: the
    /// classes `names` with the codes 1, 2, ...
    pub fn write_names(path: &Path, names: &[String]) -> Result<()> {
        let csv_error = |source| Error::Csv {
            path: PathBuf::from(path),
            source,
        };
        let mut writer = csv::Writer::from_path(path).map_err(csv_error)?;
        writer.write_record(["label", "name"]).map_err(csv_error)?;
        for (i, name) in names.iter().enumerate() {
            writer
                .write_record([(i + 1).to_string().as_str(), name.as_str()])
                .map_err(csv_error)?;
        }
        writer.flush().map_err(|e| Error::io(path, e))
    }
}

impl Dataset {
    /// The same examples with every label shifted by one class
    /// ([`flipped_label`](bcfl_processor::anomaly::attack::flipped_label)): what a label-flip
    /// attacker trains on.
    pub fn label_flipped(mut self) -> Self {
        let classes = self.label_names.len();
        for example in &mut self.examples {
            example.label = bcfl_processor::anomaly::attack::flipped_label(example.label, classes);
        }
        self
    }

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
        Self::from_rows(read_rows(path, columns)?, labels)
    }

    /// Reads a data file as [`Self::from_file`] does, in its own format when it is the Medical
    /// Abstracts one, naming the classes from a labels file.
    ///
    /// - When the file lacks `columns` but has the Medical Abstracts columns (or `columns` are
    ///   those), it reads `medical_abstract` and `condition_label`, whose numeric codes need
    ///   names: from `labels_file`, else from `medical_tc_labels.csv` next to the file; with
    ///   neither it is an error.
    /// - With a labels file, every label must be one of its codes (or names), and the classes
    ///   are its names in its order.
    ///
    /// `labels` (a saved model's classes) is imposed on the result as in [`Self::from_rows`].
    pub fn load(
        path: &Path,
        columns: &Columns,
        labels_file: Option<&Path>,
        labels: Option<&[String]>,
    ) -> Result<Self> {
        let header = read_header(path)?;
        let has = |name: &str| header.iter().any(|h| h == name);
        let corpus = Columns::medical_abstracts();
        let is_corpus = has(&corpus.text)
            && has(&corpus.label)
            && (*columns == corpus || !(has(&columns.text) && has(&columns.label)));
        let columns = if is_corpus { &corpus } else { columns };
        let sibling = path.with_file_name(MEDICAL_ABSTRACTS_LABELS);
        let labels_file = match labels_file {
            Some(file) => Some(file),
            None if is_corpus && sibling.is_file() => Some(sibling.as_path()),
            None if is_corpus => {
                return Err(Error::Data(format!(
                    "{}: the labels in column {:?} are numeric codes and there is no {} next \
                     to it: give a labels file (--labels-file) mapping them to names, a CSV \
                     `{},{}` as the corpus's {}",
                    path.display(),
                    corpus.label,
                    MEDICAL_ABSTRACTS_LABELS,
                    MEDICAL_ABSTRACTS_LABEL,
                    MEDICAL_ABSTRACTS_NAME,
                    MEDICAL_ABSTRACTS_LABELS
                )))
            }
            None => None,
        };
        let rows = read_rows(path, columns)?;
        let Some(file) = labels_file else {
            return Self::from_rows(rows, labels).map_err(|e| in_file(path, e));
        };
        let names = LabelNames::read(file)?;
        let rows = rows
            .into_iter()
            .map(|(text, label)| {
                let label = label.trim();
                if label.is_empty() {
                    return Ok((text, String::new()));
                }
                let name = names.name_of(label).ok_or_else(|| {
                    Error::Data(format!(
                        "{}: label {label:?} is not in the labels file {} (codes {:?})",
                        path.display(),
                        file.display(),
                        names.codes
                    ))
                })?;
                Ok((text, name.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::from_rows(rows, Some(labels.unwrap_or(names.names.as_slice())))
            .map_err(|e| in_file(path, e))
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
        Self::load(
            &dir.join(MEDICAL_ABSTRACTS_FILE),
            &Columns::medical_abstracts(),
            Some(&dir.join(MEDICAL_ABSTRACTS_LABELS)),
            None,
        )
    }
}

/// A data error with the file it is about.
fn in_file(path: &Path, error: Error) -> Error {
    match error {
        Error::Data(message) => Error::Data(format!("{}: {message}", path.display())),
        other => other,
    }
}

/// Whether `path` is read as CSV (with its delimiter) or as JSON lines (`None`).
fn delimiter(path: &Path) -> Option<u8> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match extension.as_str() {
        "csv" => Some(b','),
        "tsv" => Some(b'\t'),
        _ => None,
    }
}

fn read_rows(path: &Path, columns: &Columns) -> Result<Vec<(String, String)>> {
    match delimiter(path) {
        Some(delimiter) => read_csv(path, delimiter, columns),
        None => read_json_lines(path, columns),
    }
}

/// The column names of a file: its CSV header, or the keys of its first JSON line.
fn read_header(path: &Path) -> Result<Vec<String>> {
    match delimiter(path) {
        Some(delimiter) => {
            let csv_error = |source| Error::Csv {
                path: PathBuf::from(path),
                source,
            };
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(delimiter)
                .from_path(path)
                .map_err(csv_error)?;
            let headers = reader.headers().map_err(csv_error)?;
            Ok(headers.iter().map(|h| h.trim().to_string()).collect())
        }
        None => {
            let file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
            let mut first = None;
            for (i, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(|e| Error::io(path, e))?;
                if !line.trim().is_empty() {
                    first = Some((i, line));
                    break;
                }
            }
            let Some((i, line)) = first else {
                return Ok(Vec::new());
            };
            let row: serde_json::Value = serde_json::from_str(&line)
                .map_err(|e| Error::json(format!("{}:{}", path.display(), i + 1), e))?;
            Ok(row
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default())
        }
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

    /// A label flipper's data: every label moved to the next class, the last to the first.
    #[test]
    fn label_flipped_shifts_every_label_by_one_class() {
        let data = Dataset {
            examples: [0, 1, 2, 2]
                .iter()
                .map(|&label| Example {
                    text: format!("t{label}"),
                    label,
                })
                .collect(),
            label_names: vec!["a".into(), "b".into(), "c".into()],
        };
        let flipped = data.clone().label_flipped();
        let labels: Vec<usize> = flipped.examples.iter().map(|e| e.label).collect();
        assert_eq!(labels, [1, 2, 0, 0]);
        assert_eq!(flipped.label_names, data.label_names);
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

    /// A small file in the Medical Abstracts format, with its labels file when `labels`.
    fn corpus_fixture(dir: &Path, labels: bool) -> PathBuf {
        let path = dir.join(MEDICAL_ABSTRACTS_FILE);
        fs::write(
            &path,
            "condition_label,medical_abstract\n1,\"Tumour, grade 2.\"\n3,Seizures in children.\n1,Carcinoma of the lung.\n4,Stent thrombosis.\n",
        )
        .unwrap();
        if labels {
            fs::write(
                dir.join(MEDICAL_ABSTRACTS_LABELS),
                "condition_label,condition_name\n1,neoplasms\n2,digestive system diseases\n3,nervous system diseases\n4,cardiovascular diseases\n5,general pathological conditions\n",
            )
            .unwrap();
        }
        path
    }

    fn plain() -> Columns {
        Columns {
            text: "text".into(),
            label: "label".into(),
        }
    }

    #[test]
    fn the_corpus_format_is_detected_and_named_from_the_sibling_labels_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = corpus_fixture(dir.path(), true);
        let data = Dataset::load(&path, &plain(), None, None).unwrap();
        // All five classes, in the labels file's order, even those without examples.
        assert_eq!(data.num_labels(), 5);
        assert_eq!(data.label_names[0], "neoplasms");
        assert_eq!(data.label_counts(), [2, 0, 1, 1, 0]);
        assert_eq!(data.examples[0].text, "Tumour, grade 2.");
        // Naming the corpus's columns explicitly gives the same dataset.
        let explicit = Dataset::load(&path, &Columns::medical_abstracts(), None, None).unwrap();
        assert_eq!(explicit, data);
        // A saved model's classes are imposed in its order.
        let mut reversed = data.label_names.clone();
        reversed.reverse();
        let imposed = Dataset::load(&path, &plain(), None, Some(&reversed)).unwrap();
        assert_eq!(imposed.label_counts(), [0, 1, 1, 0, 2]);
    }

    #[test]
    fn numeric_codes_without_names_are_refused_and_a_labels_file_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = corpus_fixture(dir.path(), false);
        let err = Dataset::load(&path, &plain(), None, None).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("--labels-file") && message.contains("numeric"),
            "{message}"
        );
        // A labels file elsewhere, with other column names: code and name are its first two.
        let labels = dir.path().join("names.csv");
        fs::write(&labels, "id,name\n1,tumour\n3,nerves\n4,heart\n").unwrap();
        let data = Dataset::load(&path, &plain(), Some(&labels), None).unwrap();
        assert_eq!(data.label_names, ["tumour", "nerves", "heart"]);
        assert_eq!(data.label_counts(), [2, 1, 1]);
        // A code the labels file does not know is named in the error.
        fs::write(&labels, "id,name\n1,tumour\n4,heart\n").unwrap();
        let err = Dataset::load(&path, &plain(), Some(&labels), None).unwrap_err();
        assert!(err.to_string().contains("\"3\""), "{err}");
    }

    #[test]
    fn a_labels_file_applies_to_text_label_files_and_accepts_names() {
        let dir = tempfile::tempdir().unwrap();
        let labels = dir.path().join("labels.csv");
        fs::write(&labels, "condition_label,condition_name\n1,a\n2,b\n").unwrap();
        let path = dir.path().join("x.tsv");
        fs::write(&path, "label\ttext\n2\tone\nb\ttwo\n1\tthree\n").unwrap();
        let data = Dataset::load(&path, &plain(), Some(&labels), None).unwrap();
        assert_eq!(data.label_names, ["a", "b"]);
        assert_eq!(data.label_counts(), [1, 2]);
        // Without a labels file a text,label file keeps its labels as they are.
        let bare = Dataset::load(&path, &plain(), None, None).unwrap();
        assert_eq!(bare.label_names, ["1", "2", "b"]);
        // Repeated codes are refused.
        fs::write(&labels, "code,name\n1,a\n1,b\n").unwrap();
        assert!(LabelNames::read(&labels).is_err());
        // A labels file written for numeric class names reads their names back as they are.
        let numeric = dir.path().join("numeric.csv");
        LabelNames::write_names(&numeric, &["0".into(), "1".into()]).unwrap();
        assert_eq!(LabelNames::read(&numeric).unwrap().codes, ["1", "2"]);
        let path = dir.path().join("y.csv");
        fs::write(&path, "text,label\na,1\nb,0\n").unwrap();
        let data = Dataset::load(&path, &plain(), Some(&numeric), None).unwrap();
        assert_eq!(data.label_names, ["0", "1"]);
        assert_eq!(data.label_counts(), [1, 1]);
        assert_eq!(data.examples[0].label, 1);
    }

    #[test]
    fn json_lines_in_the_corpus_format_are_detected_too() {
        let dir = tempfile::tempdir().unwrap();
        corpus_fixture(dir.path(), true);
        let path = dir.path().join("rows.jsonl");
        fs::write(
            &path,
            "\n{\"condition_label\":4,\"medical_abstract\":\"Stent.\"}\n{\"condition_label\":\"1\",\"medical_abstract\":\"Tumour.\"}\n",
        )
        .unwrap();
        let data = Dataset::load(&path, &plain(), None, None).unwrap();
        assert_eq!(data.label_counts(), [1, 0, 0, 1, 0]);
    }

    #[test]
    fn the_shipped_medical_abstracts_file_loads_as_it_is() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
        let file = dir.join(MEDICAL_ABSTRACTS).join(MEDICAL_ABSTRACTS_FILE);
        let data = Dataset::load(&file, &plain(), None, None).unwrap();
        assert_eq!(data.len(), 2_287);
        assert_eq!(
            data.label_names,
            [
                "neoplasms",
                "digestive system diseases",
                "nervous system diseases",
                "cardiovascular diseases",
                "general pathological conditions"
            ]
        );
        assert_eq!(data.label_counts(), [501, 237, 305, 483, 761]);
        assert_eq!(Dataset::medical_abstracts(&dir).unwrap(), data);
    }
}
