//! Unit tests of the transaction and batch builders.

use bcfl_protos::batch as pb_batch;
use bcfl_protos::transaction as pb_txn;
use protobuf::Message as _;

use super::*;
use crate::keys::{PrivateKey, PublicKey};

fn signer() -> Signer {
    Signer::from_hex("2f1e7b7a130d7ba9da0068b3bb0ba1d79e7e77110302c9f746c3c2a63fe40088").unwrap()
}

fn txn(signer: &Signer, payload: &[u8]) -> Transaction {
    TransactionBuilder::new()
        .with_family_name("bcfl")
        .with_family_version("1.0")
        .with_inputs(vec!["abcdef".into(), "abcdef01".into()])
        .with_outputs(vec!["abcdef".into()])
        .with_nonce("n1")
        .with_payload(payload.to_vec())
        .build(signer)
        .unwrap()
}

#[test]
fn transaction_header_fields_and_signature() {
    let signer = signer();
    let t = txn(&signer, b"hello");
    let h = pb_txn::TransactionHeader::parse_from_bytes(t.header_bytes()).unwrap();
    let key = signer.public_key().as_hex();
    assert_eq!(h.get_family_name(), "bcfl");
    assert_eq!(h.get_family_version(), "1.0");
    assert_eq!(h.get_inputs(), ["abcdef", "abcdef01"]);
    assert_eq!(h.get_outputs(), ["abcdef"]);
    assert_eq!(h.get_nonce(), "n1");
    assert_eq!(h.get_signer_public_key(), key);
    assert_eq!(h.get_batcher_public_key(), key);
    // SHA-512("hello"), independently known.
    assert_eq!(
        h.get_payload_sha512(),
        "9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca7\
         2323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043"
    );
    assert_eq!(t.id().len(), 128);
    assert!(PublicKey::from_hex(key)
        .unwrap()
        .verify(t.header_bytes(), t.id()));
    assert!(t.verify());
}

#[test]
fn random_nonces_make_distinct_ids() {
    let signer = signer();
    let build = || {
        TransactionBuilder::new()
            .with_family_name("bcfl")
            .with_family_version("1.0")
            .with_payload(vec![1])
            .build(&signer)
            .unwrap()
    };
    let (a, b) = (build(), build());
    assert_eq!(a.header().nonce().len(), 32);
    assert_ne!(a.id(), b.id());
}

#[test]
fn builder_rejects_what_a_validator_would() {
    let signer = signer();
    let base = || {
        TransactionBuilder::new()
            .with_family_name("bcfl")
            .with_family_version("1.0")
            .with_payload(vec![])
    };
    assert!(matches!(
        TransactionBuilder::new()
            .with_family_version("1.0")
            .with_payload(vec![])
            .build(&signer),
        Err(ProtocolError::MissingField("family_name"))
    ));
    assert!(matches!(
        base().with_inputs(vec!["ABCD".into()]).build(&signer),
        Err(ProtocolError::InvalidField {
            field: "inputs",
            ..
        })
    ));
    assert!(matches!(
        base().with_outputs(vec!["abc".into()]).build(&signer),
        Err(ProtocolError::InvalidField {
            field: "outputs",
            ..
        })
    ));
    assert!(matches!(
        base().with_outputs(vec!["00".repeat(36)]).build(&signer),
        Err(ProtocolError::InvalidField {
            field: "outputs",
            ..
        })
    ));
    assert!(matches!(
        base().with_dependencies(vec![String::new()]).build(&signer),
        Err(ProtocolError::InvalidField {
            field: "dependencies",
            ..
        })
    ));
    assert!(base()
        .with_outputs(vec!["00".repeat(35)])
        .build(&signer)
        .is_ok());
}

#[test]
fn batch_header_lists_ids_in_order_and_verifies() {
    let signer = signer();
    let (a, b) = (txn(&signer, b"a"), txn(&signer, b"b"));
    let batch = BatchBuilder::new()
        .with_transaction(a.clone())
        .with_transaction(b.clone())
        .build(&signer)
        .unwrap();
    let h = pb_batch::BatchHeader::parse_from_bytes(batch.header_bytes()).unwrap();
    assert_eq!(h.get_transaction_ids(), [a.id(), b.id()]);
    assert_eq!(h.get_signer_public_key(), signer.public_key().as_hex());
    assert!(signer.public_key().verify(batch.header_bytes(), batch.id()));
    assert!(batch.verify());

    let list = BatchList::new(vec![batch.clone()]);
    let back = BatchList::from_bytes(&list.to_bytes()).unwrap();
    assert_eq!(back, list);
    assert_eq!(back.ids(), vec![batch.id().to_owned()]);
}

#[test]
fn batch_refuses_foreign_batcher_and_duplicates() {
    let signer = signer();
    let other = Signer::new(PrivateKey::random());
    let t = txn(&other, b"x");
    assert!(matches!(
        BatchBuilder::new().with_transaction(t).build(&signer),
        Err(ProtocolError::InvalidField { .. })
    ));
    let delegated = TransactionBuilder::new()
        .with_family_name("bcfl")
        .with_family_version("1.0")
        .with_payload(vec![])
        .with_batcher_public_key(signer.public_key().as_hex())
        .build(&other)
        .unwrap();
    let batch = BatchBuilder::new()
        .with_transaction(delegated)
        .build(&signer)
        .unwrap();
    assert!(batch.verify());

    let t = txn(&signer, b"y");
    assert!(BatchBuilder::new()
        .with_transactions(vec![t.clone(), t])
        .build(&signer)
        .is_err());
    assert!(BatchBuilder::new().build(&signer).is_err());
}

#[test]
fn tampering_breaks_verification() {
    let signer = signer();
    let batch = BatchBuilder::new()
        .with_transaction(txn(&signer, b"a"))
        .build(&signer)
        .unwrap();
    let mut proto = batch.to_proto();
    proto.mut_transactions()[0].set_payload(b"b".to_vec());
    assert!(!Batch::from_proto(proto).unwrap().verify());
}
