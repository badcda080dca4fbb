//! `bcfl-fuzz-seeds TARGET DIR`: writes TARGET's seed inputs ([`bcfl_fuzz::seeds`]) into DIR,
//! each named by its SHA-256 as libFuzzer names corpus files.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [target, dir] = args.as_slice() else {
        eprintln!("usage: bcfl-fuzz-seeds TARGET DIR");
        return ExitCode::from(2);
    };
    if !bcfl_fuzz::TARGETS.iter().any(|(name, _)| name == target) {
        eprintln!("bcfl-fuzz-seeds: unknown target {target:?}");
        return ExitCode::from(2);
    }
    let dir = PathBuf::from(dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("bcfl-fuzz-seeds: {}: {e}", dir.display());
        return ExitCode::from(1);
    }
    for seed in bcfl_fuzz::seeds(target) {
        let path = dir.join(bcfl_fed::digest::sha256_hex(&seed));
        if let Err(e) = std::fs::write(&path, &seed) {
            eprintln!("bcfl-fuzz-seeds: {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}
