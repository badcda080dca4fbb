//! Bandwidth edge lists in CSV: `from,to,bytes_per_sec`, one directed link per row.
//!
//! ```text
//! from,to,bytes_per_sec
//! 1,2,125000000
//! 2,1,1.1e8
//! alice,bob,5000000
//! ```
//!
//! The header is required (surrounding spaces are ignored); node ids are integers or strings
//! (compared as strings, so `10` sorts before `9`); the bandwidth is a positive number of bytes
//! per second. Blank lines and lines starting with `#` are skipped. Every error names its line.

use std::collections::BTreeMap;

use bcfl_processor::graph::{BandwidthGraph, GraphError};
use thiserror::Error;

/// The header every edge list starts with.
pub const HEADER: &str = "from,to,bytes_per_sec";

/// One parsed row: a directed link and the line it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeRow {
    /// The 1-based line number.
    pub line: usize,
    /// Sending node.
    pub from: String,
    /// Receiving node.
    pub to: String,
    /// Measured bandwidth, bytes per second.
    pub bytes_per_sec: f64,
}

/// Why an edge list was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EdgeListError {
    /// The first non-blank line is not the header.
    #[error("line {line}: expected the header {HEADER:?}, found {found:?}")]
    Header {
        /// The line number.
        line: usize,
        /// What was there instead.
        found: String,
    },
    /// The input has no header at all.
    #[error("the edge list is empty: expected the header {HEADER:?}")]
    Empty,
    /// A row without exactly three fields.
    #[error("line {line}: expected 3 fields (from,to,bytes_per_sec), found {found}")]
    FieldCount {
        /// The line number.
        line: usize,
        /// How many fields the row had.
        found: usize,
    },
    /// An empty node id.
    #[error("line {line}: the {field} node id is empty")]
    EmptyNode {
        /// The line number.
        line: usize,
        /// `from` or `to`.
        field: &'static str,
    },
    /// The bandwidth is not a number.
    #[error("line {line}: bandwidth {value:?} is not a number")]
    NotANumber {
        /// The line number.
        line: usize,
        /// The text found.
        value: String,
    },
    /// The bandwidth is zero, negative or infinite.
    #[error("line {line}: bandwidth {value} B/s must be positive and finite")]
    NonPositive {
        /// The line number.
        line: usize,
        /// The value found.
        value: f64,
    },
    /// A link from a node to itself.
    #[error("line {line}: link {node} -> {node} is a self loop")]
    SelfLoop {
        /// The line number.
        line: usize,
        /// The node.
        node: String,
    },
    /// A directed link given twice.
    #[error("line {line}: link {from} -> {to} duplicates line {first}")]
    Duplicate {
        /// The line number of the repeat.
        line: usize,
        /// The line it first appeared on.
        first: usize,
        /// Sending node.
        from: String,
        /// Receiving node.
        to: String,
    },
    /// The rows were valid but the graph was not (cannot happen after the checks above, kept
    /// so that no error is lost).
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// Parses an edge list into rows, checking every row.
pub fn parse_edge_list(text: &str) -> Result<Vec<EdgeRow>, EdgeListError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let (line, header) = lines.next().ok_or(EdgeListError::Empty)?;
    let fields: Vec<&str> = header.split(',').map(str::trim).collect();
    if fields != ["from", "to", "bytes_per_sec"] {
        return Err(EdgeListError::Header {
            line,
            found: header.to_owned(),
        });
    }
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut rows = Vec::new();
    for (line, text) in lines {
        let row = parse_row(line, text)?;
        let key = (row.from.clone(), row.to.clone());
        if let Some(&first) = seen.get(&key) {
            return Err(EdgeListError::Duplicate {
                line,
                first,
                from: row.from,
                to: row.to,
            });
        }
        seen.insert(key, line);
        rows.push(row);
    }
    Ok(rows)
}

fn parse_row(line: usize, text: &str) -> Result<EdgeRow, EdgeListError> {
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    let [from, to, rate] = fields[..] else {
        return Err(EdgeListError::FieldCount {
            line,
            found: fields.len(),
        });
    };
    for (field, id) in [("from", from), ("to", to)] {
        if id.is_empty() {
            return Err(EdgeListError::EmptyNode { line, field });
        }
    }
    if from == to {
        return Err(EdgeListError::SelfLoop {
            line,
            node: from.to_owned(),
        });
    }
    let bytes_per_sec: f64 = rate.parse().map_err(|_| EdgeListError::NotANumber {
        line,
        value: rate.to_owned(),
    })?;
    if !(bytes_per_sec.is_finite() && bytes_per_sec > 0.0) {
        return Err(EdgeListError::NonPositive {
            line,
            value: bytes_per_sec,
        });
    }
    Ok(EdgeRow {
        line,
        from: from.to_owned(),
        to: to.to_owned(),
        bytes_per_sec,
    })
}

/// Parses an edge list into a [`BandwidthGraph`].
pub fn graph_from_csv(text: &str) -> Result<BandwidthGraph, EdgeListError> {
    let rows = parse_edge_list(text)?;
    Ok(BandwidthGraph::from_links(
        rows.into_iter().map(|r| (r.from, r.to, r.bytes_per_sec)),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_integer_and_string_ids_skipping_blanks_and_comments() {
        let text =
            "# measured 2026-11-23\n from , to , bytes_per_sec \n\n1,2,1e6\nalice, bob ,250\n";
        let rows = parse_edge_list(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[1],
            EdgeRow {
                line: 5,
                from: "alice".into(),
                to: "bob".into(),
                bytes_per_sec: 250.0
            }
        );
        let graph = graph_from_csv(text).unwrap();
        assert_eq!(graph.nodes(), ["1", "2", "alice", "bob"]);
        assert_eq!(graph.bandwidth("1", "2"), Some(1e6));
    }

    #[test]
    fn errors_name_their_line() {
        let cases = [
            ("", EdgeListError::Empty),
            (
                "a,b,c\n",
                EdgeListError::Header {
                    line: 1,
                    found: "a,b,c".into(),
                },
            ),
            (
                "from,to,bytes_per_sec\n1,2\n",
                EdgeListError::FieldCount { line: 2, found: 2 },
            ),
            (
                "from,to,bytes_per_sec\n1,2,3,4\n",
                EdgeListError::FieldCount { line: 2, found: 4 },
            ),
            (
                "from,to,bytes_per_sec\n,2,3\n",
                EdgeListError::EmptyNode {
                    line: 2,
                    field: "from",
                },
            ),
            (
                "from,to,bytes_per_sec\n1,2,fast\n",
                EdgeListError::NotANumber {
                    line: 2,
                    value: "fast".into(),
                },
            ),
            (
                "from,to,bytes_per_sec\n1,2,5\n\n2,1,0\n",
                EdgeListError::NonPositive {
                    line: 4,
                    value: 0.0,
                },
            ),
            (
                "from,to,bytes_per_sec\n1,2,-5\n",
                EdgeListError::NonPositive {
                    line: 2,
                    value: -5.0,
                },
            ),
            (
                "from,to,bytes_per_sec\n3,3,5\n",
                EdgeListError::SelfLoop {
                    line: 2,
                    node: "3".into(),
                },
            ),
            (
                "from,to,bytes_per_sec\n1,2,5\n2,1,5\n1,2,7\n",
                EdgeListError::Duplicate {
                    line: 4,
                    first: 2,
                    from: "1".into(),
                    to: "2".into(),
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_edge_list(text).unwrap_err(), expected, "{text:?}");
        }
        let message = parse_edge_list("from,to,bytes_per_sec\n1,2,inf\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "line 2: bandwidth inf B/s must be positive and finite"
        );
    }
}
