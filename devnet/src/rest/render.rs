//! Sawtooth protobuf messages as the REST API's JSON.
//!
//! The Python API converts messages with `MessageToDict(including_default_value_fields=True,
//! preserving_proto_field_name=True)` and expands every `header` from its serialized bytes: field
//! names stay snake_case, defaults are kept, `bytes` are base64, enums are names and `uint64` is
//! a decimal string. Batch statuses and receipts are then passed through `_drop_empty_props` and
//! `_drop_id_prefixes` ([`drop_empty_strings`], [`rename_id_keys`]).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use protobuf::{Message, ProtobufEnum};
use sawtooth_sdk::messages::batch::{Batch, BatchHeader};
use sawtooth_sdk::messages::block::{Block, BlockHeader};
use sawtooth_sdk::messages::events::Event;
use sawtooth_sdk::messages::transaction::{Transaction, TransactionHeader};
use sawtooth_sdk::messages::transaction_receipt::{StateChange, TransactionReceipt};

use super::error::ApiError;
use super::json::Json;
use crate::view::{BatchStatus, BatchStatusKind};

/// Standard base64 with padding, as Python's `MessageToDict` writes `bytes`.
pub fn b64(bytes: &[u8]) -> Json {
    Json::Str(BASE64.encode(bytes))
}

fn parse_header<M: Message>(bytes: &[u8]) -> Result<M, ApiError> {
    M::parse_from_bytes(bytes).map_err(|err| {
        tracing::error!(%err, "the ledger holds a resource with an invalid header");
        ApiError::ResourceHeaderInvalid
    })
}

/// Decodes a block's header bytes.
pub fn block_header(block: &Block) -> Result<BlockHeader, ApiError> {
    parse_header(block.get_header())
}

/// A block with its header, and its batches' and transactions' headers, expanded.
pub fn block(block: &Block) -> Result<Json, ApiError> {
    let header = block_header(block)?;
    let batches = block
        .get_batches()
        .iter()
        .map(batch)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json::obj([
        ("batches", Json::Arr(batches)),
        (
            "header",
            Json::obj([
                ("block_num", Json::Str(header.get_block_num().to_string())),
                (
                    "previous_block_id",
                    Json::str(header.get_previous_block_id()),
                ),
                (
                    "signer_public_key",
                    Json::str(header.get_signer_public_key()),
                ),
                ("batch_ids", Json::strs(header.get_batch_ids())),
                ("consensus", b64(header.get_consensus())),
                ("state_root_hash", Json::str(header.get_state_root_hash())),
            ]),
        ),
        ("header_signature", Json::str(block.get_header_signature())),
    ]))
}

/// A batch with its header and its transactions' headers expanded.
pub fn batch(batch: &Batch) -> Result<Json, ApiError> {
    let header: BatchHeader = parse_header(batch.get_header())?;
    let transactions = batch
        .get_transactions()
        .iter()
        .map(transaction)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json::obj([
        (
            "header",
            Json::obj([
                (
                    "signer_public_key",
                    Json::str(header.get_signer_public_key()),
                ),
                ("transaction_ids", Json::strs(header.get_transaction_ids())),
            ]),
        ),
        ("header_signature", Json::str(batch.get_header_signature())),
        ("trace", Json::Bool(batch.get_trace())),
        ("transactions", Json::Arr(transactions)),
    ]))
}

/// A transaction with its header expanded.
pub fn transaction(txn: &Transaction) -> Result<Json, ApiError> {
    let header: TransactionHeader = parse_header(txn.get_header())?;
    Ok(Json::obj([
        (
            "header",
            Json::obj([
                (
                    "batcher_public_key",
                    Json::str(header.get_batcher_public_key()),
                ),
                ("dependencies", Json::strs(header.get_dependencies())),
                ("family_name", Json::str(header.get_family_name())),
                ("family_version", Json::str(header.get_family_version())),
                ("inputs", Json::strs(header.get_inputs())),
                ("nonce", Json::str(header.get_nonce())),
                ("outputs", Json::strs(header.get_outputs())),
                ("payload_sha512", Json::str(header.get_payload_sha512())),
                (
                    "signer_public_key",
                    Json::str(header.get_signer_public_key()),
                ),
            ]),
        ),
        ("header_signature", Json::str(txn.get_header_signature())),
        ("payload", b64(txn.get_payload())),
    ]))
}

/// A `StateChange` in field order (`address`, `value`, `type`), as `MessageToDict` emits it.
pub fn state_change(change: &StateChange) -> Json {
    Json::obj([
        ("address", Json::str(change.get_address())),
        ("value", b64(change.get_value())),
        (
            "type",
            Json::str(change.get_field_type().descriptor().name()),
        ),
    ])
}

fn event(event: &Event) -> Json {
    let attributes = event
        .get_attributes()
        .iter()
        .map(|a| {
            Json::obj([
                ("key", Json::str(a.get_key())),
                ("value", Json::str(a.get_value())),
            ])
        })
        .collect();
    Json::obj([
        ("event_type", Json::str(event.get_event_type())),
        ("attributes", Json::Arr(attributes)),
        ("data", b64(event.get_data())),
    ])
}

/// A receipt as `/receipts` returns it: empty strings dropped, `transaction_id` renamed `id`.
pub fn receipt(receipt: &TransactionReceipt) -> Json {
    let raw = Json::obj([
        (
            "state_changes",
            Json::Arr(
                receipt
                    .get_state_changes()
                    .iter()
                    .map(state_change)
                    .collect(),
            ),
        ),
        (
            "events",
            Json::Arr(receipt.get_events().iter().map(event).collect()),
        ),
        (
            "data",
            Json::Arr(receipt.get_data().iter().map(|d| b64(d)).collect()),
        ),
        ("transaction_id", Json::str(receipt.get_transaction_id())),
    ]);
    rename_id_keys(drop_empty_strings(raw))
}

/// The protobuf name of a batch status.
pub fn status_name(kind: BatchStatusKind) -> &'static str {
    match kind {
        BatchStatusKind::Committed => "COMMITTED",
        BatchStatusKind::Invalid => "INVALID",
        BatchStatusKind::Pending => "PENDING",
        BatchStatusKind::Unknown => "UNKNOWN",
    }
}

/// A batch status as `/batch_statuses` returns it.
pub fn batch_status(status: &BatchStatus) -> Json {
    let invalid = status
        .invalid_transactions
        .iter()
        .map(|t| {
            Json::obj([
                ("transaction_id", Json::str(t.id.as_str())),
                ("message", Json::str(t.message.as_str())),
                ("extended_data", b64(&t.extended_data)),
            ])
        })
        .collect();
    let raw = Json::obj([
        ("batch_id", Json::str(status.id.as_str())),
        ("status", Json::str(status_name(status.status))),
        ("invalid_transactions", Json::Arr(invalid)),
    ]);
    rename_id_keys(drop_empty_strings(raw))
}

/// `_drop_empty_props`: removes object properties whose value is the empty string, recursively.
pub fn drop_empty_strings(value: Json) -> Json {
    match value {
        Json::Arr(items) => Json::Arr(items.into_iter().map(drop_empty_strings).collect()),
        Json::Obj(pairs) => Json::Obj(
            pairs
                .into_iter()
                .filter(|(_, v)| !matches!(v, Json::Str(s) if s.is_empty()))
                .map(|(k, v)| (k, drop_empty_strings(v)))
                .collect(),
        ),
        other => other,
    }
}

/// `_drop_id_prefixes`: renames every key ending in `id` to `id`, recursively.
pub fn rename_id_keys(value: Json) -> Json {
    match value {
        Json::Arr(items) => Json::Arr(items.into_iter().map(rename_id_keys).collect()),
        Json::Obj(pairs) => {
            let mut renamed: Vec<(String, Json)> = Vec::with_capacity(pairs.len());
            for (key, item) in pairs {
                let key = if key.ends_with("id") {
                    "id".to_owned()
                } else {
                    key
                };
                let item = rename_id_keys(item);
                // A Python dict comprehension keeps the last value for a repeated key.
                match renamed.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = item,
                    None => renamed.push((key, item)),
                }
            }
            Json::Obj(renamed)
        }
        other => other,
    }
}

/// The last change per address made by `receipts` (in order), sorted by address: the content
/// of a block's `sawtooth/state-delta` event.
pub fn block_state_changes<'a>(
    receipts: impl IntoIterator<Item = &'a TransactionReceipt>,
) -> Vec<StateChange> {
    let mut last: BTreeMap<String, StateChange> = BTreeMap::new();
    for receipt in receipts {
        for change in receipt.get_state_changes() {
            last.insert(change.get_address().to_owned(), change.clone());
        }
    }
    last.into_values().collect()
}
