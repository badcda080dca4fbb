//! Submission checks (spec 2.3): signatures, payload hashes, batcher keys and structure.
//!
//! A batch that passes becomes a [`QueuedBatch`]: the protobuf batch plus its parsed transaction
//! headers, so that execution never parses a header twice. Signatures are verified over
//! SHA-256 of the *stored* header bytes, never a re-serialization.
//!
//! Devnet is stricter than a validator where a batch could otherwise never finish:
//!
//! * header `inputs`/`outputs` that do not match `^([0-9a-f]{2}){0,35}$` refuse the batch at
//!   submission (a validator would accept it and then fail the transaction silently at context
//!   creation, leaving the batch PENDING/UNKNOWN);
//! * a batch with no transactions is refused (it has nothing to execute, so it can neither
//!   commit nor fail);
//! * a transaction that depends on itself or on a later transaction of its own batch is refused
//!   (a validator's candidate block drops such a batch every time, so it stays PENDING for ever).

use std::collections::HashSet;
use std::sync::atomic::AtomicU32;
use std::sync::OnceLock;

use protobuf::Message as _;
use sawtooth_sdk::messages::batch::{Batch, BatchHeader};
use sawtooth_sdk::messages::transaction::TransactionHeader;
use secp256k1::{ecdsa::Signature, Message, PublicKey, Secp256k1, VerifyOnly};
use sha2::{Digest, Sha256, Sha512};

/// One transaction of a queued batch, with its parsed header.
#[derive(Debug)]
pub struct QueuedTxn {
    /// The transaction id (header signature).
    pub id: String,
    /// The parsed header.
    pub header: TransactionHeader,
}

/// A batch that passed every submission check.
#[derive(Debug)]
pub struct QueuedBatch {
    /// The batch id (header signature).
    pub id: String,
    /// The batch as submitted.
    pub batch: Batch,
    /// The batch signer's public key (the pool's fairness key).
    pub signer: String,
    /// Its transactions, in order.
    pub txns: Vec<QueuedTxn>,
    /// The distinct `(family, version)` pairs of its transactions.
    pub families: Vec<(String, String)>,
    /// Failed executions so far (INTERNAL_ERROR, timeouts, disconnects).
    pub failures: AtomicU32,
}

fn secp() -> &'static Secp256k1<VerifyOnly> {
    static CTX: OnceLock<Secp256k1<VerifyOnly>> = OnceLock::new();
    CTX.get_or_init(Secp256k1::verification_only)
}

/// Checks a secp256k1 signature (128 hex) by a public key (hex) over SHA-256 of `bytes`.
pub fn verify_signature(public_key: &str, signature: &str, bytes: &[u8]) -> bool {
    let (Ok(key), Ok(sig)) = (hex::decode(public_key), hex::decode(signature)) else {
        return false;
    };
    if signature.len() != 128 || signature.bytes().any(|b| b.is_ascii_uppercase()) {
        return false;
    }
    let (Ok(key), Ok(sig)) = (PublicKey::from_slice(&key), Signature::from_compact(&sig)) else {
        return false;
    };
    let digest = Sha256::digest(bytes);
    let Ok(msg) = Message::from_slice(&digest) else {
        return false;
    };
    secp().verify_ecdsa(&msg, &sig, &key).is_ok()
}

/// True for `^([0-9a-f]{2}){0,35}$`: an address or an address prefix.
pub fn is_address_prefix(s: &str) -> bool {
    s.len() <= 70 && s.len() % 2 == 0 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// True for a full 70-hex address.
pub fn is_full_address(s: &str) -> bool {
    s.len() == 70 && is_address_prefix(s)
}

/// Validates one batch; the error is the reason, for `SubmitError::InvalidBatch`.
pub fn validate_batch(batch: Batch) -> Result<QueuedBatch, String> {
    let id = batch.get_header_signature().to_string();
    let header = BatchHeader::parse_from_bytes(batch.get_header())
        .map_err(|e| format!("batch {id}: header does not decode: {e}"))?;
    let signer = header.get_signer_public_key();
    if !verify_signature(signer, &id, batch.get_header()) {
        return Err(format!("batch {id}: signature does not verify"));
    }
    let txns = batch.get_transactions();
    let ids = header.get_transaction_ids();
    if txns.is_empty() {
        return Err(format!("batch {id}: no transactions"));
    }
    if ids.len() != txns.len() {
        return Err(format!(
            "batch {id}: header lists {} transaction ids but the batch holds {}",
            ids.len(),
            txns.len()
        ));
    }
    let mut seen = HashSet::with_capacity(ids.len());
    if !ids.iter().all(|t| seen.insert(t.as_str())) {
        return Err(format!("batch {id}: duplicate transaction ids"));
    }
    let mut parsed = Vec::with_capacity(txns.len());
    for (txn, listed) in txns.iter().zip(ids) {
        let tid = txn.get_header_signature();
        if tid != listed {
            return Err(format!(
                "batch {id}: transaction {tid} is not in header order"
            ));
        }
        let th = TransactionHeader::parse_from_bytes(txn.get_header())
            .map_err(|e| format!("transaction {tid}: header does not decode: {e}"))?;
        if !verify_signature(th.get_signer_public_key(), tid, txn.get_header()) {
            return Err(format!("transaction {tid}: signature does not verify"));
        }
        if hex::encode(Sha512::digest(txn.get_payload())) != th.get_payload_sha512() {
            return Err(format!(
                "transaction {tid}: payload_sha512 does not match the payload"
            ));
        }
        if th.get_batcher_public_key() != signer {
            return Err(format!(
                "transaction {tid}: batcher_public_key is not the batch signer"
            ));
        }
        if th.get_dependencies().iter().any(String::is_empty) {
            return Err(format!("transaction {tid}: empty dependency"));
        }
        // A dependency on itself or on a later transaction of the batch can never be met: the
        // batch would stay pending for ever.
        if let Some(dep) = th
            .get_dependencies()
            .iter()
            .find(|d| ids[parsed.len()..].contains(d))
        {
            return Err(format!(
                "transaction {tid}: depends on {dep}, which is not earlier in its batch"
            ));
        }
        if let Some(bad) = th
            .get_inputs()
            .iter()
            .chain(th.get_outputs())
            .find(|a| !is_address_prefix(a))
        {
            return Err(format!(
                "transaction {tid}: bad input/output address {bad:?}"
            ));
        }
        parsed.push(QueuedTxn {
            id: tid.to_string(),
            header: th,
        });
    }
    let mut families: Vec<(String, String)> = parsed
        .iter()
        .map(|t| {
            (
                t.header.get_family_name().to_string(),
                t.header.get_family_version().to_string(),
            )
        })
        .collect();
    families.sort();
    families.dedup();
    Ok(QueuedBatch {
        id,
        signer: signer.to_owned(),
        batch,
        txns: parsed,
        families,
        failures: AtomicU32::new(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protobuf::RepeatedField;
    use sawtooth_sdk::messages::transaction::Transaction;
    use sawtooth_sdk::signing::{create_context, secp256k1::Secp256k1PrivateKey, CryptoFactory};

    const KEY: &str = "2f1e7b7a130d7ba9da0068b3bb0ba1d79e7e77110302c9f746c3c2a63fe40088";

    fn build(payloads: &[&[u8]]) -> Batch {
        let ctx = create_context("secp256k1").unwrap();
        let key = Secp256k1PrivateKey::from_hex(KEY).unwrap();
        let factory = CryptoFactory::new(&*ctx);
        let signer = factory.new_signer(&key);
        let pk = signer.get_public_key().unwrap().as_hex();
        let mut txns = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            let mut h = TransactionHeader::new();
            h.set_family_name("f".into());
            h.set_family_version("1".into());
            h.set_batcher_public_key(pk.clone());
            h.set_signer_public_key(pk.clone());
            h.set_payload_sha512(hex::encode(Sha512::digest(p)));
            h.set_nonce(i.to_string());
            h.set_inputs(RepeatedField::from_vec(vec!["abcdef".into()]));
            let hb = h.write_to_bytes().unwrap();
            let mut t = Transaction::new();
            t.set_header_signature(signer.sign(&hb).unwrap());
            t.set_header(hb);
            t.set_payload(p.to_vec());
            txns.push(t);
        }
        let mut bh = BatchHeader::new();
        bh.set_signer_public_key(pk);
        bh.set_transaction_ids(
            txns.iter()
                .map(|t| t.get_header_signature().to_string())
                .collect(),
        );
        let hb = bh.write_to_bytes().unwrap();
        let mut b = Batch::new();
        b.set_header_signature(signer.sign(&hb).unwrap());
        b.set_header(hb);
        b.set_transactions(RepeatedField::from_vec(txns));
        b
    }

    #[test]
    fn signature_vector_verifies() {
        let sig = "5195115d9be2547b720ee74c23dd841842875db6eae1f5da8605b050a49e702b4aa83be72ab7e3cb20f17c657011b49f4c8632be2745ba4de79e6aa05da57b35";
        let pk = "026a2c795a9776f75464aa3bda3534c3154a6e91b357b1181d3f515110f84b67c5";
        assert!(verify_signature(pk, sig, b"test"));
        assert!(!verify_signature(pk, sig, b"tesT"));
        assert!(!verify_signature(pk, &sig.to_uppercase(), b"test"));
    }

    #[test]
    fn good_batch_passes_and_tampering_fails() {
        let good = build(&[b"a", b"b"]);
        let q = validate_batch(good.clone()).unwrap();
        assert_eq!(q.txns.len(), 2);

        let mut bad_payload = good.clone();
        bad_payload.mut_transactions()[0].set_payload(b"x".to_vec());
        assert!(validate_batch(bad_payload)
            .unwrap_err()
            .contains("payload_sha512"));

        let mut reordered = good.clone();
        reordered.mut_transactions().swap(0, 1);
        assert!(validate_batch(reordered).unwrap_err().contains("order"));

        let mut bad_sig = good.clone();
        let mut s = bad_sig.get_header_signature().to_string();
        s.replace_range(0..2, if s.starts_with("00") { "11" } else { "00" });
        bad_sig.set_header_signature(s);
        assert!(validate_batch(bad_sig).unwrap_err().contains("signature"));

        let mut missing = good;
        missing.mut_transactions().pop();
        assert!(validate_batch(missing).unwrap_err().contains("holds"));
    }

    #[test]
    fn address_shapes() {
        assert!(is_address_prefix(""));
        assert!(is_address_prefix("00ff"));
        assert!(!is_address_prefix("0"));
        assert!(!is_address_prefix("AB"));
        assert!(is_full_address(&"a".repeat(70)));
        assert!(!is_full_address(&"a".repeat(72)));
    }
}
