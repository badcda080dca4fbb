//! Figures as files: the commands that draw several figures (`anomaly bench --figures`,
//! `anomaly plot`, `experiment scale --figures`) take a path prefix and write each figure as
//! `PREFIX-NAME.svg`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// `PREFIX-NAME.svg`.
fn svg_path(prefix: &Path, name: &str) -> PathBuf {
    let mut path = prefix.as_os_str().to_owned();
    path.push(format!("-{name}.svg"));
    PathBuf::from(path)
}

/// Writes each `(name, svg)` to `PREFIX-NAME.svg`; the paths written, in order.
pub fn write_svgs(
    prefix: &Path,
    figures: impl IntoIterator<Item = (impl AsRef<str>, String)>,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (name, svg) in figures {
        let path = svg_path(prefix, name.as_ref());
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_figure_is_written_beside_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("scale-100");
        let written = write_svgs(&prefix, [("bytes", "<svg/>".to_owned())]).unwrap();
        assert_eq!(written, [dir.path().join("scale-100-bytes.svg")]);
        assert_eq!(std::fs::read_to_string(&written[0]).unwrap(), "<svg/>");
        let missing = dir.path().join("no-such-folder").join("x");
        let err = write_svgs(&missing, [("f1", String::new())]).unwrap_err();
        assert!(format!("{err:#}").contains("x-f1.svg"), "{err:#}");
    }
}
