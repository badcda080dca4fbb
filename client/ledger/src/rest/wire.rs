//! The REST API's JSON shapes (Sawtooth 1.2) and their conversion to the client's native types.
//!
//! Sawtooth renders protobuf with `MessageToDict`, so 64-bit integers such as `block_num` arrive
//! as strings, while other implementations send numbers: both are accepted. Empty strings are
//! dropped from batch statuses, so every optional field has a default.

use base64::Engine as _;
use serde::{Deserialize, Deserializer};

use super::{
    BatchStatus, BatchStatusKind, Block, BlockTransaction, InvalidTransaction, StateEntry,
};

/// `{"error": {"code", "title", "message"}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub(crate) error: ErrorBody,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub(crate) code: u32,
    #[serde(default)]
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) message: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Paging {
    #[serde(default)]
    pub(crate) next_position: Option<String>,
    #[serde(default)]
    pub(crate) next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Statuses {
    pub(crate) data: Vec<WireBatchStatus>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireBatchStatus {
    id: String,
    status: String,
    #[serde(default)]
    invalid_transactions: Vec<WireInvalid>,
}

#[derive(Debug, Deserialize)]
struct WireInvalid {
    #[serde(default)]
    id: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    extended_data: String,
}

impl WireBatchStatus {
    pub(crate) fn into_native(self) -> Result<BatchStatus, String> {
        let status = match self.status.as_str() {
            "COMMITTED" => BatchStatusKind::Committed,
            "INVALID" => BatchStatusKind::Invalid,
            "PENDING" => BatchStatusKind::Pending,
            "UNKNOWN" => BatchStatusKind::Unknown,
            other => return Err(format!("unknown batch status {other:?}")),
        };
        let invalid_transactions = self
            .invalid_transactions
            .into_iter()
            .map(|t| {
                Ok(InvalidTransaction {
                    id: t.id,
                    message: t.message,
                    extended_data: decode_b64(&t.extended_data)?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(BatchStatus {
            id: self.id,
            status,
            invalid_transactions,
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct StateList {
    pub(crate) data: Vec<WireEntry>,
    pub(crate) head: String,
    #[serde(default)]
    pub(crate) paging: Paging,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireEntry {
    address: String,
    data: String,
}

impl WireEntry {
    pub(crate) fn into_native(self) -> Result<StateEntry, String> {
        Ok(StateEntry {
            data: decode_b64(&self.data)?,
            address: self.address,
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct StateGet {
    pub(crate) data: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct BlockList {
    pub(crate) data: Vec<WireBlock>,
    #[serde(default)]
    pub(crate) head: Option<String>,
    #[serde(default)]
    pub(crate) paging: Paging,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireBlock {
    header: WireBlockHeader,
    header_signature: String,
    #[serde(default)]
    batches: Vec<WireBatch>,
}

#[derive(Debug, Deserialize)]
struct WireBlockHeader {
    #[serde(deserialize_with = "u64_from_string_or_number")]
    block_num: u64,
    #[serde(default)]
    previous_block_id: String,
    #[serde(default)]
    signer_public_key: String,
    #[serde(default)]
    batch_ids: Vec<String>,
    #[serde(default)]
    state_root_hash: String,
}

#[derive(Debug, Deserialize)]
struct WireBatch {
    header_signature: String,
    #[serde(default)]
    transactions: Vec<WireTransaction>,
}

#[derive(Debug, Deserialize)]
struct WireTransaction {
    header: WireTransactionHeader,
    header_signature: String,
    #[serde(default)]
    payload: String,
}

#[derive(Debug, Deserialize)]
struct WireTransactionHeader {
    #[serde(default)]
    family_name: String,
    #[serde(default)]
    family_version: String,
    #[serde(default)]
    signer_public_key: String,
}

impl WireBlock {
    pub(crate) fn into_native(self) -> Result<Block, String> {
        let mut transactions = Vec::new();
        for batch in self.batches {
            for txn in batch.transactions {
                transactions.push(BlockTransaction {
                    id: txn.header_signature,
                    batch_id: batch.header_signature.clone(),
                    family_name: txn.header.family_name,
                    family_version: txn.header.family_version,
                    signer_public_key: txn.header.signer_public_key,
                    payload: decode_b64(&txn.payload)?,
                });
            }
        }
        Ok(Block {
            id: self.header_signature,
            block_num: self.header.block_num,
            previous_block_id: self.header.previous_block_id,
            signer_public_key: self.header.signer_public_key,
            state_root_hash: self.header.state_root_hash,
            batch_ids: self.header.batch_ids,
            transactions,
        })
    }
}

fn decode_b64(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("bad base64: {e}"))
}

/// Accepts `"3"` (Sawtooth's `MessageToDict`) as well as `3`.
fn u64_from_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u64),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Number(n) => Ok(n),
        Either::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_json(num: &str) -> String {
        format!(
            r#"{{"header": {{"block_num": {num}, "previous_block_id": "p", "signer_public_key": "k",
                "batch_ids": ["b"], "state_root_hash": "r", "consensus": "RGV2bW9kZQ=="}},
               "header_signature": "id",
               "batches": [{{"header": {{"signer_public_key": "k", "transaction_ids": ["t"]}},
                 "header_signature": "b", "trace": false,
                 "transactions": [{{"header": {{"family_name": "bcfl", "family_version": "1.0",
                   "signer_public_key": "s", "inputs": [], "outputs": [], "dependencies": [],
                   "nonce": "", "payload_sha512": "x", "batcher_public_key": "k"}},
                   "header_signature": "t", "payload": "aGk="}}]}}]}}"#
        )
    }

    #[test]
    fn block_num_as_string_or_number() {
        for num in ["\"7\"", "7"] {
            let block: WireBlock = serde_json::from_str(&block_json(num)).unwrap();
            let block = block.into_native().unwrap();
            assert_eq!(block.block_num, 7);
            assert_eq!(block.transactions[0].payload, b"hi");
            assert_eq!(block.transactions[0].batch_id, "b");
        }
        assert!(serde_json::from_str::<WireBlock>(&block_json("\"x\"")).is_err());
    }

    #[test]
    fn batch_status_with_dropped_empty_strings() {
        let json = r#"{"data": [{"id": "a", "status": "INVALID",
            "invalid_transactions": [{"id": "t", "message": "no such round"}]},
            {"id": "b", "status": "COMMITTED", "invalid_transactions": []}], "link": "l"}"#;
        let statuses: Statuses = serde_json::from_str(json).unwrap();
        let native: Vec<_> = statuses
            .data
            .into_iter()
            .map(|s| s.into_native().unwrap())
            .collect();
        assert_eq!(native[0].status, BatchStatusKind::Invalid);
        assert_eq!(native[0].invalid_transactions[0].message, "no such round");
        assert!(native[0].invalid_transactions[0].extended_data.is_empty());
        assert_eq!(native[1].status, BatchStatusKind::Committed);
    }
}
