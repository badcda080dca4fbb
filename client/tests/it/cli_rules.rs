//! Every processor rule of the `bcfl` family (docs/transaction-family.md), observed through the
//! `bcfl` CLI against a real ledger and the `bcfl-tp` processor, on devnet and on a real Sawtooth
//! 1.2.6 validator (`on_sawtooth`, skipped where its sources are absent): each violation exits
//! with status 2 and the processor's rejection message on stderr.
//!
//! A few rules cannot be broken through the CLI, which checks them before sending: those are
//! posted as raw batches through the REST API with the `bcfl_ledger` builders, and the
//! INVALID batch's message is checked instead (see `raw_batches`).
//!
//! The steps between the violations (registrations, commitments, evaluation...) go through the
//! library, since each `bcfl` process spends about a third of a second loading libtorch; the
//! violations that do not change state run concurrently, group by group. `cli_devnet.rs` covers
//! the successful path through the CLI.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use bcfl_ledger::family::BcflTransaction;
use bcfl_ledger::keys::{write_key_pair, PrivateKey, Signer};
use bcfl_ledger::protocol::{BatchBuilder, BatchList, TransactionBuilder};
use bcfl_ledger::rest::{BatchStatus, BatchStatusKind, RestClient, RestError};
use bcfl_protos::bcfl as pb;
use bcfl_testkit::{AnyLedger, LedgerKind};

struct Cli {
    url: String,
    dir: PathBuf,
    /// `bcfl` with the keys in `dir/keys`.
    bcfl: bcfl_testkit::Cli,
}

impl Cli {
    /// Runs `bcfl --key KEY ARGS...`, `args` split at whitespace.
    fn run(&self, key: &str, args: &str) -> Output {
        let args: Vec<&str> = args.split_whitespace().collect();
        self.bcfl.run(key, &args)
    }

    fn ok(&self, key: &str, args: &str) {
        let out = self.run(key, args);
        assert!(
            out.status.success(),
            "bcfl {args} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Set-up steps, which are not under test, go through the library: starting `bcfl` costs
    /// a third of a second (it loads libtorch). Signs `payload` with `key`, waits for COMMITTED.
    fn setup(&self, key: &str, payload: pb::BcflPayload) {
        let batches = BcflTransaction::new(payload)
            .into_batch_list(&self.signer(key))
            .unwrap();
        let statuses = self.post(&batches).unwrap();
        assert!(
            statuses
                .iter()
                .all(|s| s.status == BatchStatusKind::Committed),
            "{statuses:?}"
        );
    }

    fn post(&self, batches: &BatchList) -> Result<Vec<BatchStatus>, RestError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = RestClient::new(&self.url).unwrap();
        runtime.block_on(client.submit(batches, Some(Duration::from_secs(20))))
    }

    /// Posts `batches` and returns the processor's rejection message of the INVALID batch.
    fn rejected_message(&self, batches: &BatchList) -> String {
        match self.post(batches) {
            Err(RestError::Rejected { message, .. }) => message,
            other => panic!("expected an INVALID batch, got {other:?}"),
        }
    }

    /// Runs every `(key, args, message)` at once (none changes state) and expects each to exit
    /// with status 2 and its message on stderr.
    fn rejects(&self, cases: &[(&str, &str, &str)]) {
        std::thread::scope(|scope| {
            for &(key, args, message) in cases {
                scope.spawn(move || {
                    let out = self.run(key, args);
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    assert_eq!(out.status.code(), Some(2), "bcfl {args}: {stderr}");
                    assert!(
                        stderr.contains(message),
                        "bcfl {args} as {key}: expected {message:?} in {stderr}"
                    );
                });
            }
        });
    }

    fn keygen(&self, name: &str) -> String {
        let key = PrivateKey::random();
        write_key_pair(&self.dir.join("keys"), name, &key, false).unwrap();
        key.public_key().as_hex().to_owned()
    }

    fn signer(&self, name: &str) -> Signer {
        Signer::from_file(&self.dir.join("keys").join(format!("{name}.priv"))).unwrap()
    }

    /// A file under the test directory holding `text`; returns its path.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// `bcfl commit` arguments for round `round` with a blob of its own and a 4-value sketch.
    fn commit(&self, key: &str, round: u64) -> String {
        let blob = self.file(&format!("{key}.blob"), key);
        let sketch = self.file("sketch", "1 2 3 4");
        format!(
            "commit --round {round} --blob {blob} --samples 10 --loss 0.5 --norm 1 --sketch {sketch}"
        )
    }
}

fn payload(set: impl FnOnce(&mut pb::BcflPayload)) -> pb::BcflPayload {
    let mut payload = pb::BcflPayload::new();
    set(&mut payload);
    payload
}

/// A batch of one `bcfl` 1.0 transaction carrying `payload` bytes as they are.
fn raw_batch(signer: &Signer, payload: Vec<u8>) -> BatchList {
    let txn = TransactionBuilder::new()
        .with_family_name("bcfl")
        .with_family_version("1.0")
        .with_inputs(vec!["085493".to_owned()])
        .with_outputs(vec!["085493".to_owned()])
        .with_payload(payload)
        .build(signer)
        .unwrap();
    BatchList::new(vec![BatchBuilder::new()
        .with_transaction(txn)
        .build(signer)
        .unwrap()])
}

bcfl_testkit::on_each_ledger!(every_processor_rule_is_reported_through_the_cli);

fn every_processor_rule_is_reported_through_the_cli(kind: LedgerKind) {
    let dir = tempfile::tempdir().unwrap();
    let Some(ledger) = AnyLedger::start(kind, dir.path()) else {
        return;
    };
    let url = ledger.url().to_owned();
    let cli = Cli {
        url: url.clone(),
        dir: dir.path().to_owned(),
        bcfl: bcfl_testkit::Cli::new(&url, dir.path().join("keys")),
    };
    let [_, alice, bob, carol, dave, eve] =
        ["admin", "alice", "bob", "carol", "dave", "eve"].map(|n| cli.keygen(n));
    let member = |key: &str| {
        payload(|p| {
            p.set_register_member(pb::RegisterMember {
                public_key: key.to_owned(),
                name: "member".to_owned(),
                endpoint: "http://127.0.0.1:9000".to_owned(),
                ..Default::default()
            })
        })
    };
    let update = |round: u64| {
        payload(|p| {
            p.set_commit_update(pb::CommitUpdate {
                round,
                update_sha256: "33".repeat(32),
                size_bytes: 1,
                num_samples: 1,
                sketch: vec![1, 2, 3, 4],
                ..Default::default()
            })
        })
    };
    let open_round = |round: u64, parent: &str| {
        payload(|p| {
            p.set_open_round(pb::OpenRound {
                round,
                parent_model_sha256: parent.to_owned(),
                aggregator: alice.clone(),
                mode: pb::RoundMode::SERVERLESS,
                ..Default::default()
            })
        })
    };
    let register = |name: &str| {
        format!("member register {name} --name {name} --endpoint http://127.0.0.1:9000")
    };
    let base = "11".repeat(32);
    let init = format!(
        "consortium init --admin admin --base-model-sha256 {base} --min-participants 3 \
         --quorum 2 --sketch-length 4"
    );

    // --- InitConsortium: nothing before it; signed by one of its admins; only once.
    cli.rejects(&[
        (
            "admin",
            &register("alice"),
            "the consortium is not initialized",
        ),
        (
            "eve",
            &init,
            "the signer must be one of the admin keys it names",
        ),
    ]);
    cli.ok("admin", &init);

    // --- Membership: admins register and suspend; a member updates only itself, while
    // active; names are bounded. The CLI validates fields with the processor's own payload
    // rules before signing, so the 65-character name and the 257-character reason are refused
    // client-side, with the processor's field messages.
    let long = format!(
        "member register alice --name {} --endpoint http://h:1",
        "n".repeat(65)
    );
    cli.rejects(&[
        ("admin", &init, "the consortium is already initialized"),
        (
            "admin",
            "member register alice --name alice --endpoint http://127.0.0.1:8008/batches",
            "the endpoint must be http://HOST:PORT or https://HOST:PORT (port 1-65535; no path, \
             query, fragment or user info): it has a path",
        ),
        (
            "admin",
            "member register alice --name alice --endpoint http://127.0.0.1:65536",
            "the port is not a number from 1 to 65535",
        ),
        (
            "alice",
            &register("alice"),
            "only an admin may register members",
        ),
        (
            "admin",
            &long,
            "register_member.name: must be at most 64 characters",
        ),
        (
            "admin",
            &format!("member suspend alice --reason {}", "r".repeat(257)),
            "suspend_member.reason: must be at most 256 characters",
        ),
    ]);
    for key in [&alice, &bob, &carol] {
        cli.setup("admin", member(key));
    }
    cli.setup(
        "admin",
        payload(|p| {
            p.set_suspend_member(pb::SuspendMember {
                public_key: carol.clone(),
                reason: "left".to_owned(),
                ..Default::default()
            })
        }),
    );
    cli.rejects(&[
        (
            "admin",
            &register("alice"),
            &format!("member {alice} is already registered"),
        ),
        (
            "alice",
            "member update bob --name robert",
            &format!("only an admin or the member itself may update member {bob}"),
        ),
        (
            "alice",
            "member suspend bob --reason no",
            "only an admin may suspend members",
        ),
        (
            "admin",
            "member suspend eve --reason who",
            &format!("member {eve} is not registered"),
        ),
        (
            "admin",
            "member suspend carol --reason again",
            &format!("member {carol} is already suspended"),
        ),
        (
            "carol",
            "member update carol --name back",
            "a suspended member may not update itself",
        ),
    ]);

    // --- OpenRound: admins only, strictly the next round, from the right parent, an active
    // aggregator, enough active members (2 of the 3 required: carol is suspended).
    // --- Commitments, bandwidth: only registered, active members (eve never was, carol is
    // suspended).
    let open = "round open --aggregator alice";
    cli.rejects(&[
        ("alice", open, "only an admin may open rounds"),
        (
            "admin",
            &format!("{open} --round 2 --parent-model-sha256 {base}"),
            "the next round is 1, not 2",
        ),
        (
            "admin",
            &format!("{open} --parent-model-sha256 {}", "22".repeat(32)),
            &format!(
                "round 1 must start from model {base}, not {}",
                "22".repeat(32)
            ),
        ),
        (
            "admin",
            "round open --aggregator eve",
            &format!("aggregator {eve} is not a registered member"),
        ),
        (
            "admin",
            "round open --aggregator carol",
            &format!("aggregator {carol} is suspended"),
        ),
        (
            "admin",
            open,
            "opening a round needs at least 3 active members, there are 2",
        ),
        ("alice", &cli.commit("alice", 1), "round 1 does not exist"),
        (
            "eve",
            "bandwidth report --link alice:1000:10",
            &format!("signer {eve} is not a registered member"),
        ),
        (
            "carol",
            "bandwidth report --link alice:1000:10",
            &format!("signer {carol} is suspended"),
        ),
    ]);
    cli.setup("admin", member(&dave));
    cli.setup("admin", open_round(1, &base));
    // A member reports only its own outgoing links: a report has no `from`, the signer is the
    // source by construction; targets are registered members other than the signer.
    cli.setup("alice", update(1));
    cli.setup(
        "alice",
        payload(|p| {
            p.set_report_bandwidth(pb::ReportBandwidth {
                epoch: 5,
                measurements: vec![pb::LinkMeasurement {
                    to: bob.clone(),
                    bytes_per_sec: 1000,
                    rtt_us: 10,
                    probe_bytes: 1,
                    ..Default::default()
                }]
                .into(),
                ..Default::default()
            })
        }),
    );

    // --- One commitment per member per round, only while OPEN; the quorum to evaluate; only
    // an admin abandons an open round.
    let model = cli.file("model", "global model");
    let aggregate = format!("aggregate commit --model {model}");
    cli.rejects(&[
        (
            "admin",
            &format!("{open} --parent-model-sha256 {base}"),
            "round 1 is OPEN; close it before opening round 2",
        ),
        (
            "admin",
            open,
            "round 1 is still open (OPEN): close it first (`bcfl round close --round 1`",
        ),
        (
            "eve",
            &cli.commit("eve", 1),
            &format!("signer {eve} is not a registered member"),
        ),
        (
            "carol",
            &cli.commit("carol", 1),
            &format!("signer {carol} is suspended"),
        ),
        (
            "alice",
            &cli.commit("alice", 1),
            &format!("{alice} already committed to round 1"),
        ),
        (
            "alice",
            "bandwidth report --link alice:1000:10",
            "a member may not report a link to itself",
        ),
        (
            "alice",
            "bandwidth report --link eve:1000:10",
            &format!("link target {eve} is not a registered member"),
        ),
        (
            "alice",
            "bandwidth report --epoch 3 --link bob:1000:10",
            &format!("epoch 3 is older than the newest sample (epoch 5) of link {alice} -> {bob}"),
        ),
        (
            "bob",
            "round evaluate",
            "only an admin or the round's aggregator may evaluate round 1",
        ),
        (
            "admin",
            "round evaluate --round 9",
            "round 9 does not exist",
        ),
        (
            "alice",
            "round evaluate",
            "round 1 has 1 commitments, the quorum is 2",
        ),
        (
            "alice",
            &format!("{aggregate} --contributors alice"),
            "round 1 is OPEN, not EVALUATED",
        ),
        (
            "bob",
            "round close",
            "only an admin may abandon round 1 (OPEN)",
        ),
    ]);
    cli.setup("bob", update(1));
    cli.setup(
        "alice",
        payload(|p| {
            p.set_evaluate_round(pb::EvaluateRound {
                round: 1,
                ..Default::default()
            })
        }),
    );

    // --- CommitAggregate: the aggregator only, exactly the verdict's sets (no anomaly method
    // is configured: every committer is accepted), the consortium's rule.
    let mut accepted = [alice.clone(), bob.clone()];
    accepted.sort();
    cli.rejects(&[
        ("alice", "round evaluate", "round 1 is EVALUATED, not OPEN"),
        (
            "dave",
            &cli.commit("dave", 1),
            "round 1 is EVALUATED, not OPEN",
        ),
        (
            "bob",
            &aggregate,
            "only the round's aggregator (or, in SERVER mode, an admin) may commit the \
             aggregate of round 1",
        ),
        (
            "alice",
            &format!("{aggregate} --contributors alice"),
            &format!(
                "the contributors must be exactly the verdict's accepted members ({})",
                accepted.join(",")
            ),
        ),
        (
            "alice",
            &format!("{aggregate} --contributors alice,bob --excluded dave"),
            "the excluded members must be exactly the verdict's ()",
        ),
        (
            "alice",
            &format!("{aggregate} --rule median"),
            "the aggregation rule must be the consortium's FEDAVG, not MEDIAN",
        ),
    ]);
    let global = "44".repeat(32);
    cli.setup(
        "alice",
        payload(|p| {
            p.set_commit_aggregate(pb::CommitAggregate {
                round: 1,
                model_sha256: global.clone(),
                contributors: accepted.to_vec().into(),
                rule: pb::AggregationRule::FEDAVG,
                size_bytes: 1,
                ..Default::default()
            })
        }),
    );

    // --- CloseRound: the aggregator or an admin once aggregated, never twice.
    cli.rejects(&[
        (
            "bob",
            "round close",
            "only an admin or the round's aggregator may close round 1",
        ),
        ("admin", "round close --round 9", "round 9 does not exist"),
    ]);
    cli.setup(
        "alice",
        payload(|p| {
            p.set_close_round(pb::CloseRound {
                round: 1,
                ..Default::default()
            })
        }),
    );
    std::thread::scope(|scope| {
        scope.spawn(|| {
            cli.rejects(&[(
                "admin",
                "round close --round 1",
                "round 1 is already CLOSED",
            )]);
        });
        cli.setup("admin", open_round(2, &global));
        raw_batches(&cli);
    });
}

/// Rules the CLI checks before sending, and malformed payloads it cannot produce.
fn raw_batches(cli: &Cli) {
    let dave = cli.signer("dave");
    // The caller opened round 2 for the sketch rule: the CLI refuses a sketch of the wrong length itself
    // ("the consortium requires exactly 4"), so the commitment is built with the library.
    let mut payload = pb::BcflPayload::new();
    payload.set_commit_update(pb::CommitUpdate {
        round: 2,
        update_sha256: "33".repeat(32),
        size_bytes: 1,
        num_samples: 1,
        sketch: vec![1, 2, 3],
        ..Default::default()
    });
    let batches = BcflTransaction::new(payload)
        .into_batch_list(&dave)
        .unwrap();
    assert_eq!(
        cli.rejected_message(&batches),
        "the sketch must hold 4 values, got 3"
    );

    // Over the bound on any sketch: the library refuses to build it (the processor's payload
    // rules run client-side), so the bytes are posted as they are.
    let mut payload = pb::BcflPayload::new();
    payload.set_commit_update(pb::CommitUpdate {
        round: 2,
        update_sha256: "33".repeat(32),
        size_bytes: 1,
        num_samples: 1,
        sketch: vec![0; 4097],
        ..Default::default()
    });
    let bytes = protobuf::Message::write_to_bytes(&payload).unwrap();
    assert_eq!(
        cli.rejected_message(&raw_batch(&dave, bytes)),
        "invalid payload: commit_update.sketch: must hold at most 4096 values, got 4097"
    );

    // Malformed payloads: not a protobuf, and no action at all.
    let message = cli.rejected_message(&raw_batch(&dave, vec![0xff, 0xff, 0xff]));
    assert!(
        message.starts_with("invalid payload: payload is not a valid BcflPayload protobuf"),
        "{message}"
    );
    let message = cli.rejected_message(&raw_batch(&dave, Vec::new()));
    assert_eq!(
        message,
        "invalid payload: payload carries no known action (empty or unknown oneof)"
    );
}
