//! A small JSON value with the two renderings the Sawtooth REST API uses.
//!
//! The Python REST API writes HTTP bodies with
//! `json.dumps(obj, indent=2, separators=(',', ': '), sort_keys=True)` and websocket messages
//! with a bare `json.dumps(obj)` (insertion order, `", "` and `": "` separators). Both escape
//! every non-ASCII character (`ensure_ascii`). [`Json`] keeps object keys in insertion order so
//! that both renderings can be reproduced byte for byte, independently of how `serde_json` is
//! configured elsewhere in the workspace.

use std::fmt::Write as _;

/// A JSON value whose objects keep their keys in insertion order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer (the REST API never emits floats).
    Int(i64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, keys in insertion order.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An object from `(key, value)` pairs.
    pub fn obj<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Json)>) -> Self {
        Json::Obj(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A string value.
    pub fn str(s: impl Into<String>) -> Self {
        Json::Str(s.into())
    }

    /// An array of strings.
    pub fn strs<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Self {
        Json::Arr(items.into_iter().map(|s| Json::str(s.as_ref())).collect())
    }

    /// Python's `json.dumps(self, indent=2, separators=(',', ': '), sort_keys=True)`.
    pub fn to_python_pretty(&self) -> String {
        let mut out = String::new();
        write_pretty(self, 0, &mut out);
        out
    }

    /// Python's `json.dumps(self)`: insertion order, `", "` and `": "` separators.
    pub fn to_python_compact(&self) -> String {
        let mut out = String::new();
        write_compact(self, &mut out);
        out
    }
}

fn write_pretty(value: &Json, depth: usize, out: &mut String) {
    match value {
        Json::Arr(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline_indent(depth + 1, out);
                write_pretty(item, depth + 1, out);
            }
            newline_indent(depth, out);
            out.push(']');
        }
        Json::Obj(pairs) if !pairs.is_empty() => {
            let mut sorted: Vec<&(String, Json)> = pairs.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (key, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline_indent(depth + 1, out);
                write_string(key, out);
                out.push_str(": ");
                write_pretty(item, depth + 1, out);
            }
            newline_indent(depth, out);
            out.push('}');
        }
        scalar => write_compact(scalar, out),
    }
}

fn newline_indent(depth: usize, out: &mut String) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn write_compact(value: &Json, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        Json::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Json::Str(s) => write_string(s, out),
        Json::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_compact(item, out);
            }
            out.push(']');
        }
        Json::Obj(pairs) => {
            out.push('{');
            for (i, (key, item)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(key, out);
                out.push_str(": ");
                write_compact(item, out);
            }
            out.push('}');
        }
    }
}

/// Python's `ensure_ascii` string encoder: everything outside `' '..='~'` is escaped.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_matches_python_json_dumps() {
        let value = Json::obj([
            ("link", Json::str("http://h/x")),
            (
                "data",
                Json::Arr(vec![
                    Json::Int(1),
                    Json::obj([("b", Json::Null), ("a", Json::Bool(true))]),
                ]),
            ),
            ("empty", Json::Arr(vec![])),
            ("none", Json::Obj(vec![])),
        ]);
        // json.dumps({...}, indent=2, separators=(',', ': '), sort_keys=True)
        let expected = "{\n  \"data\": [\n    1,\n    {\n      \"a\": true,\n      \"b\": null\n    }\n  ],\n  \"empty\": [],\n  \"link\": \"http://h/x\",\n  \"none\": {}\n}";
        assert_eq!(value.to_python_pretty(), expected);
    }

    #[test]
    fn compact_keeps_insertion_order_and_python_separators() {
        let value = Json::obj([
            ("z", Json::str("1")),
            ("a", Json::Arr(vec![Json::Int(1), Json::Int(2)])),
        ]);
        assert_eq!(value.to_python_compact(), "{\"z\": \"1\", \"a\": [1, 2]}");
    }

    proptest::proptest! {
        #[test]
        fn rendered_strings_are_ascii_json_that_decodes_back(text in "\\PC*|[\\x00-\\x1f\"\\\\]*") {
            for rendered in [Json::str(text.as_str()).to_python_compact(), Json::str(text.as_str()).to_python_pretty()] {
                proptest::prop_assert!(rendered.is_ascii());
                let decoded: String = serde_json::from_str(&rendered).unwrap();
                proptest::prop_assert_eq!(&decoded, &text);
            }
        }

        #[test]
        fn pretty_output_is_sorted_json(keys in proptest::collection::vec("[a-z]{1,6}", 0..8)) {
            let mut unique: Vec<&String> = Vec::new();
            for key in &keys {
                if !unique.contains(&key) {
                    unique.push(key);
                }
            }
            let value = Json::obj(unique.iter().map(|k| (k.as_str(), Json::Arr(vec![Json::Int(1), Json::Null]))));
            let rendered = value.to_python_pretty();
            let parsed: serde_json::Value = serde_json::from_str(&rendered).unwrap();
            let mut sorted = unique.clone();
            sorted.sort();
            let positions: Vec<usize> = sorted.iter().map(|k| rendered.find(&format!("\"{k}\":")).unwrap()).collect();
            proptest::prop_assert!(positions.windows(2).all(|w| w[0] < w[1]));
            proptest::prop_assert_eq!(parsed.as_object().map_or(0, |o| o.len()), sorted.len());
        }
    }

    #[test]
    fn strings_are_ascii_escaped_like_python() {
        // python3 -c 'import json; print(json.dumps("a\"b\\c\n\x01\xe9\U0001F600/\x7f\x08\x0c\t\r"))'
        let value = Json::str("a\"b\\c\n\u{1}é😀/\u{7f}\u{8}\u{c}\t\r");
        assert_eq!(
            value.to_python_compact(),
            "\"a\\\"b\\\\c\\n\\u0001\\u00e9\\ud83d\\ude00/\\u007f\\b\\f\\t\\r\""
        );
    }
}
