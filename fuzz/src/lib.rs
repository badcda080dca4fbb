//! Fuzz targets of bcfl's parsers of untrusted bytes, each a function that must not panic on any
//! input and that checks an invariant of what it accepts.
//!
//! | target | input | invariant |
//! | --- | --- | --- |
//! | [`payload`] | a transaction payload | parses to an action, or to an error; a parsed payload re-encodes and parses to the same action |
//! | [`handler`] | a sequence of payloads | the processor's handler, over the in-memory context, answers each with success or `InvalidTransaction`, never `InternalError`, and leaves state unchanged on refusal |
//! | [`batch`] | a REST `BatchList` body | devnet's batch validation accepts or refuses each batch with a reason |
//! | [`manifest`] | a blob manifest (JSON) and data | validation and chunk verification never panic; a verified stream is the manifest's size |
//! | [`range`] | a `Range` header and a blob size | a range the blob server serves lies inside the blob |
//! | [`update`] | an update blob (safetensors) | a blob that loads re-encodes canonically: loading that encoding gives the same bytes again |
//! | [`blob_request`] | an HTTP request (method, target, headers, body; signed or not) | the blob server's router, authentication first, never panics; unsigned requests get 4xx, validly signed ones never 5xx |
//! | [`rest_request`] | an HTTP request (method, target, headers, body) | devnet's REST API router over a real ledger never panics and never answers 500 |
//!
//! `fuzz_targets/` holds the libFuzzer entry points (feature `libfuzzer`), built and run with
//! coverage instrumentation by `scripts/fuzz.sh`; `corpus/<target>/` holds their seed corpus
//! and every input that once failed (the crate's tests replay all of them, so a crash found
//! once stays a regression test).

use bcfl_fed::update::{Encoding, Update};
use bcfl_ledger::family::BcflTransaction;
use bcfl_ledger::keys::{PrivateKey, Signer};
use bcfl_net::manifest::{BlobId, ChunkVerifier, Manifest};
use bcfl_processor::access::declared_addresses;
use bcfl_processor::payload::Action;
use bcfl_processor::testing::{test_key, MemoryLedger};
use bcfl_processor::ApplyError;
use bcfl_protos::bcfl as pb;
use protobuf::Message as _;

/// A fuzz target: takes any bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// The targets by name, as `corpus/<name>/` and `scripts/fuzz.sh` call them.
pub const TARGETS: [(&str, Target); 8] = [
    ("payload", payload),
    ("handler", handler),
    ("batch", batch),
    ("manifest", manifest),
    ("range", range),
    ("update", update),
    ("blob_request", blob_request),
    ("rest_request", rest_request),
];

mod blob_request;
mod http;
mod rest_request;
pub use blob_request::blob_request;
pub use rest_request::rest_request;

/// A transaction payload.
pub fn payload(data: &[u8]) {
    let Ok(action) = Action::parse(data) else {
        return;
    };
    let proto = pb::BcflPayload::parse_from_bytes(data).expect("a parsed payload decodes");
    let again = proto.write_to_bytes().expect("a decoded payload encodes");
    let reparsed = Action::parse(&again).expect("a re-encoded payload parses");
    assert_eq!(reparsed.name(), action.name());
}

/// Splits `data` into length-prefixed pieces (one byte of length, then the piece).
fn pieces(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = data.split_first() {
        let take = (len as usize).min(rest.len());
        out.push(&rest[..take]);
        data = &rest[take..];
    }
    out
}

/// A sequence of payloads, each signed by one of four keys (the first byte of each piece picks
/// it; key 0 is the admin of a consortium the ledger starts with).
pub fn handler(data: &[u8]) {
    run_handler(data);
}

/// [`handler`], returning the ledger it leaves.
pub fn run_handler(data: &[u8]) -> MemoryLedger {
    let signers: Vec<String> = ["admin", "m1", "m2", "m3"]
        .iter()
        .map(|n| test_key(n))
        .collect();
    let mut ledger = MemoryLedger::new();
    let mut init = pb::BcflPayload::new();
    init.set_init_consortium(pb::InitConsortium {
        admin_keys: vec![signers[0].clone()].into(),
        params: Some(pb::ConsortiumParams {
            base_model_sha256: "11".repeat(32),
            model_id: "fuzz".to_owned(),
            min_participants: 1,
            commit_quorum: 1,
            sketch_length: 4,
            aggregation_rule: pb::AggregationRule::FEDAVG,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    });
    // The consortium may be refused (parameters change over versions); the sequence runs anyway.
    let _ = ledger.submit(&signers[0], &init);
    for piece in pieces(data) {
        let Some((&who, bytes)) = piece.split_first() else {
            continue;
        };
        let signer = &signers[who as usize % signers.len()];
        let before = ledger.state().clone();
        // The header declares what the family's access rules give (nothing for bytes that do
        // not decode), as a client would.
        let (inputs, outputs) = pb::BcflPayload::parse_from_bytes(bytes)
            .ok()
            .and_then(|p| declared_addresses(&p, signer).ok())
            .unwrap_or_default();
        let result = ledger.submit_raw(signer, bytes, inputs, outputs);
        match result {
            Ok(_) => {}
            Err(ApplyError::InvalidTransaction(_)) => {
                assert_eq!(
                    &before,
                    ledger.state(),
                    "a refused transaction changed state"
                )
            }
            Err(ApplyError::InternalError(message)) => {
                panic!("the handler answered InternalError: {message}")
            }
        }
    }
    ledger
}

/// A REST `BatchList` body, as devnet's `POST /batches` parses and validates it.
pub fn batch(data: &[u8]) {
    let Ok(list) = sawtooth_sdk::messages::batch::BatchList::parse_from_bytes(data) else {
        return;
    };
    for batch in list.get_batches() {
        if let Err(reason) = bcfl_devnet::ledger::validate::validate_batch(batch.clone()) {
            assert!(!reason.is_empty());
        }
    }
}

/// A manifest (JSON, up to the first `0` byte) and the data that follows, as a receiver checks
/// it against the blob id the manifest names.
pub fn manifest(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (json, rest) = data.split_at(split);
    let Ok(manifest) = serde_json::from_slice::<Manifest>(json) else {
        return;
    };
    let id: BlobId = manifest.sha256.clone();
    if manifest.validate(&id).is_err() {
        return;
    }
    for i in 0..manifest.chunks.len().min(1 << 16) {
        assert!(manifest.chunk_len(i) <= manifest.chunk_size);
    }
    let size = manifest.size;
    let mut verifier = ChunkVerifier::new(manifest);
    for piece in rest.get(1..).unwrap_or_default().chunks(7) {
        if verifier.push(piece).is_err() {
            return;
        }
    }
    if verifier.finish().is_ok() {
        assert_eq!(rest.len().saturating_sub(1) as u64, size);
    }
}

/// A `Range` header (after 8 bytes of blob size) against a blob of that size.
pub fn range(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let size = u64::from_le_bytes(data[..8].try_into().expect("8 bytes")) % (1 << 40);
    let Ok(value) = axum::http::HeaderValue::from_bytes(&data[8..]) else {
        return;
    };
    if let Ok(Some((start, end))) = bcfl_net::server::parse_range(Some(&value), size) {
        assert!(start <= end && end < size, "{start}-{end} of {size}");
    }
}

/// An update blob.
pub fn update(data: &[u8]) {
    let Ok(update) = Update::from_bytes(data) else {
        return;
    };
    let canonical = update.to_bytes(Encoding::F32);
    let again = Update::from_bytes(&canonical).expect("a canonical blob loads");
    assert_eq!(again.to_bytes(Encoding::F32), canonical);
}

/// Seed inputs of `target`: well-formed examples of each input, so that fuzzing starts from
/// the shapes the parsers accept (`scripts/fuzz.sh` writes them into the corpus folder; the
/// tests replay them).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "payload" => payloads().into_iter().map(|(_, p)| encode(&p)).collect(),
        "handler" => {
            // One round: the admin registers two members and opens it, both commit.
            let mut sequence = Vec::new();
            for (who, payload) in payloads() {
                let bytes = encode(&payload);
                if bytes.len() < 255 {
                    sequence.push(bytes.len() as u8 + 1);
                    sequence.push(who);
                    sequence.extend_from_slice(&bytes);
                }
            }
            vec![sequence]
        }
        "batch" => {
            let signer = Signer::new(
                PrivateKey::from_hex(
                    "2f1e7b7a130d7ba9da0068b3bb0ba1d79e7e77110302c9f746c3c2a63fe40088",
                )
                .expect("the spec's test key"),
            );
            payloads()
                .into_iter()
                .filter_map(|(_, p)| BcflTransaction::new(p).into_batch_list(&signer).ok())
                .map(|list| list.to_bytes())
                .collect()
        }
        "manifest" => {
            let data = b"the blob a manifest describes, in chunks of four bytes";
            let mut input = serde_json::to_vec(&Manifest::of_bytes(data, 4)).expect("JSON");
            input.push(0);
            input.push(b'\n');
            input.extend_from_slice(data);
            vec![input]
        }
        "range" => [
            "bytes=0-99",
            "bytes=-5",
            "bytes=990-",
            "bytes=5-2",
            "bytes=0-1,4-5",
        ]
        .iter()
        .map(|h| {
            let mut input = 1000u64.to_le_bytes().to_vec();
            input.extend_from_slice(h.as_bytes());
            input
        })
        .collect(),
        "update" => {
            let mut tensors = std::collections::BTreeMap::new();
            tensors.insert(
                "a.lora_a".to_string(),
                (vec![2, 2], vec![0.5, -1.0, 0.0, 2.0]),
            );
            tensors.insert("head.bias".to_string(), (vec![3], vec![1.0, -0.25, 0.125]));
            let update = Update { tensors };
            vec![
                update.to_bytes(Encoding::F32),
                update.to_bytes(Encoding::Int8),
            ]
        }
        "blob_request" => blob_request::seeds(),
        "rest_request" => {
            rest_request::seeds(seeds("batch").first().map_or(&[][..], Vec::as_slice))
        }
        _ => Vec::new(),
    }
}

fn encode(payload: &pb::BcflPayload) -> Vec<u8> {
    payload.write_to_bytes().expect("a payload encodes")
}

/// A round's payloads in order, each with the index of its signer in [`handler`]'s keys.
fn payloads() -> Vec<(u8, pb::BcflPayload)> {
    let hash = |c: char| c.to_string().repeat(64);
    let mut out = Vec::new();
    for (i, name) in ["m1", "m2"].iter().enumerate() {
        let mut p = pb::BcflPayload::new();
        p.set_register_member(pb::RegisterMember {
            public_key: test_key(name),
            name: (*name).to_owned(),
            endpoint: format!("http://127.0.0.1:{}", 7000 + i),
            ..Default::default()
        });
        out.push((0, p));
    }
    let mut open = pb::BcflPayload::new();
    open.set_open_round(pb::OpenRound {
        round: 1,
        aggregator: test_key("m1"),
        parent_model_sha256: "11".repeat(32),
        mode: pb::RoundMode::SERVERLESS,
        ..Default::default()
    });
    out.push((0, open));
    for (who, c) in [(1u8, 'a'), (2, 'b')] {
        let mut commit = pb::BcflPayload::new();
        commit.set_commit_update(pb::CommitUpdate {
            round: 1,
            update_sha256: hash(c),
            num_samples: 100,
            size_bytes: 1000,
            sketch: bcfl_protos::signed_bytes::pack(&[1, -2, 3, 0]).unwrap(),
            ..Default::default()
        });
        out.push((who, commit));
    }
    let mut evaluate = pb::BcflPayload::new();
    evaluate.set_evaluate_round(pb::EvaluateRound {
        round: 1,
        ..Default::default()
    });
    out.push((1, evaluate));
    let mut aggregate = pb::BcflPayload::new();
    aggregate.set_commit_aggregate(pb::CommitAggregate {
        round: 1,
        model_sha256: hash('c'),
        size_bytes: 1000,
        contributors: vec![test_key("m1"), test_key("m2")].into(),
        rule: pb::AggregationRule::FEDAVG,
        ..Default::default()
    });
    out.push((1, aggregate));
    let mut close = pb::BcflPayload::new();
    close.set_close_round(pb::CloseRound {
        round: 1,
        ..Default::default()
    });
    out.push((0, close));
    out
}
