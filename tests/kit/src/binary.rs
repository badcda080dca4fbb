//! The workspace's binaries, found next to the running test and built when missing.
//!
//! `cargo test` builds the binaries of the package under test only (and exposes them as
//! `CARGO_BIN_EXE_<name>`); a test that starts another package's binary finds it in the same
//! target directory, `<target>/<profile>/`, whatever `CARGO_TARGET_DIR` is.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// A binary of the workspace that tests start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Binary {
    /// `bcfl`, the client CLI (package `bcfl-cli`). It hands the commands that train over to
    /// [`BcflTrain`](Self::BcflTrain), which a test of such a command must build too.
    Bcfl,
    /// `bcfl-train`, the CLI's commands that need libtorch (package `bcfl-cli`, built with
    /// bcfl-client's `train` feature), next to `bcfl`.
    BcflTrain,
    /// `bcfl-devnet`, the embedded ledger (package `bcfl-devnet`).
    BcflDevnet,
    /// `bcfl-tp`, the transaction processor (package `bcfl-tp`).
    BcflTp,
    /// `bcfl-devnet-fixture-tp`, the scripted processor of the devnet's failure tests (package
    /// `bcfl-devnet`).
    DevnetFixtureTp,
}

impl Binary {
    /// The binary's name, as in `cargo build --bin <name>`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bcfl => "bcfl",
            Self::BcflTrain => "bcfl-train",
            Self::BcflDevnet => "bcfl-devnet",
            Self::BcflTp => "bcfl-tp",
            Self::DevnetFixtureTp => "bcfl-devnet-fixture-tp",
        }
    }

    /// The package that builds it.
    pub fn package(self) -> &'static str {
        match self {
            Self::Bcfl | Self::BcflTrain => "bcfl-cli",
            Self::BcflDevnet | Self::DevnetFixtureTp => "bcfl-devnet",
            Self::BcflTp => "bcfl-tp",
        }
    }

    /// The features its build needs beyond the package's defaults, as in `cargo build
    /// --features <features>`.
    pub fn features(self) -> &'static [&'static str] {
        match self {
            Self::BcflTrain => &["bcfl-client/train"],
            Self::Bcfl | Self::BcflDevnet | Self::BcflTp | Self::DevnetFixtureTp => &[],
        }
    }

    /// The binary's path in [`profile_dir`]; builds it first when it is not there.
    ///
    /// The build runs `cargo build -p <package> --bin <name>` with the same target directory and
    /// profile, and the package's default features plus [`features`](Self::features), once at
    /// a time in this process. Panics when the build fails.
    pub fn path(self) -> PathBuf {
        let dir = profile_dir();
        let path = dir.join(format!("{}{}", self.name(), std::env::consts::EXE_SUFFIX));
        if path.is_file() {
            return path;
        }
        // Tests run in parallel: one build at a time, and none for a binary another test built
        // meanwhile.
        static BUILDING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = BUILDING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !path.is_file() {
            self.build(&dir);
        }
        assert!(
            path.is_file(),
            "cargo built {} but {} is missing",
            self.name(),
            path.display()
        );
        path
    }

    fn build(self, profile_dir: &Path) {
        let target_dir = profile_dir
            .parent()
            .expect("the profile directory lives in the target directory");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .args(["build", "-p", self.package(), "--bin", self.name()])
            .args(
                self.features()
                    .iter()
                    .flat_map(|feature| ["--features", feature]),
            )
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(workspace_root());
        match profile_dir.file_name().and_then(|name| name.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                command.arg("--release");
            }
            Some(profile) => {
                command.args(["--profile", profile]);
            }
        }
        eprintln!("{} is not built: running {command:?}", self.name());
        let status = command
            .status()
            .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
        assert!(status.success(), "{command:?} failed: {status}");
    }
}

/// The directory of the running test's profile, `<target>/<profile>`, where cargo puts the
/// workspace's binaries.
///
/// Test executables live in `<target>/<profile>/deps`; an executable elsewhere is taken to live
/// in the profile directory itself.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().expect("the test executable's directory");
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The workspace root, where the on-demand builds run and the scripts lie: found from the
/// running test's `CARGO_MANIFEST_DIR` (cargo sets it for every test process: the tested
/// crate's directory, inside the workspace), so that a kit compiled from another checkout of
/// the same sources (a shared target directory, which cargo does not rebuild for a new path)
/// still runs this checkout's scripts; else this crate's own directory at build time
/// (`<root>/tests/kit`).
pub(crate) fn workspace_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .and_then(|dir| {
            dir.ancestors()
                .find(|d| d.join("scripts/sawtooth-build.sh").is_file())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_packages_match_the_manifests() {
        let root = workspace_root();
        for binary in [
            Binary::Bcfl,
            Binary::BcflTrain,
            Binary::BcflDevnet,
            Binary::BcflTp,
            Binary::DevnetFixtureTp,
        ] {
            let folder = match binary.package() {
                "bcfl-cli" => "client/cli",
                "bcfl-devnet" => "devnet",
                "bcfl-tp" => "processor/tp",
                other => panic!("unknown package {other}"),
            };
            let manifest = std::fs::read_to_string(root.join(folder).join("Cargo.toml")).unwrap();
            assert!(
                manifest.contains(&format!("name = \"{}\"", binary.package())),
                "{folder}/Cargo.toml"
            );
            let declared = manifest.contains(&format!("name = \"{}\"", binary.name()))
                || root
                    .join(folder)
                    .join(format!("src/bin/{}.rs", binary.name()))
                    .is_file();
            assert!(declared, "{} is not a binary of {folder}", binary.name());
        }
    }
}
