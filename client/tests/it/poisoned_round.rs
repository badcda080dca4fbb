//! The poisoned round of the anomaly tests: an admin, members `m0`..`m4`, a consortium that
//! needs all five members' commitments and judges them with the modified z-score and DBSCAN
//! (4-long sketches), and commitments in which `m4` sends a scaled, sign-flipped update.

use std::path::Path;

use bcfl_testkit::{Cli, ConsortiumSetup};

/// The signers of the poisoned-round tests: an admin and members `m0`..`m4`.
pub const POISON_NAMES: [&str; 6] = ["admin", "m0", "m1", "m2", "m3", "m4"];

/// Creates the keys of [`POISON_NAMES`] and a consortium that needs all five members'
/// commitments and judges them with the modified z-score and DBSCAN (4-long sketches), then
/// registers the members, `m0` first, each (also its display name) with the blob endpoint
/// `endpoint(name)`.
pub fn init_poison_consortium(cli: &Cli, endpoint: impl Fn(&str) -> String) {
    let mut setup = ConsortiumSetup::new()
        .with_admin(POISON_NAMES[0])
        .with_base_model(&"22".repeat(32))
        .with_init_args(&[
            "--min-participants",
            "5",
            "--quorum",
            "5",
            "--sketch-length",
            "4",
            "--anomaly",
            "zscore,dbscan",
        ]);
    for name in &POISON_NAMES[1..] {
        setup = setup.with_member(name, &endpoint(name));
    }
    setup.run(cli);
}

/// Commits an update of `members` (`m0`.. in order, at most five) to the open round, from files
/// written under `dir`: small honest updates with similar sketches, except that `m4` scales its
/// update x10 and flips its sign, so the processor's verdict excludes it.
pub fn commit_with_poisoned_m4(cli: &Cli, dir: &Path, members: &[&str]) {
    for (i, name) in members.iter().enumerate() {
        let (norm, sketch) = if *name == "m4" {
            ("15", "-100 -41 -69 -30")
        } else {
            ("1.5", ["10 4 7 3", "11 4 7 3", "10 5 7 3", "10 4 6 3"][i])
        };
        let blob = dir.join(format!("{name}.blob"));
        let sketch_path = dir.join(format!("{name}.sketch"));
        std::fs::write(&blob, format!("update of {name}")).unwrap();
        std::fs::write(&sketch_path, sketch).unwrap();
        let (blob, sketch_path) = (blob.to_str().unwrap(), sketch_path.to_str().unwrap());
        cli.ok(
            name,
            &[
                "commit",
                "--blob",
                blob,
                "--samples",
                "100",
                "--loss",
                "0.5",
                "--norm",
                norm,
                "--sketch",
                sketch_path,
            ],
        );
    }
}
