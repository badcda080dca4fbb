//! Transactions and batches: native types, consuming builders, protobuf at the edge.
//!
//! A [`Transaction`] keeps the exact header bytes it was signed over (Sawtooth verifies the
//! stored bytes, never a re-serialization) next to the decoded [`TransactionHeader`]. Builders
//! check what a validator would reject before anything is signed: address prefixes must be
//! lowercase even-length hex of at most 70 characters, dependencies must be transaction ids, and
//! a batch's transactions must name the batch signer as their batcher.
//!
//! ```
//! use bcfl_ledger::keys::{PrivateKey, Signer};
//! use bcfl_ledger::protocol::{BatchBuilder, BatchList, TransactionBuilder};
//!
//! let signer = Signer::new(PrivateKey::random());
//! let txn = TransactionBuilder::new()
//!     .with_family_name("intkey")
//!     .with_family_version("1.0")
//!     .with_inputs(vec!["1cf126".into()])
//!     .with_outputs(vec!["1cf126".into()])
//!     .with_payload(b"payload".to_vec())
//!     .build(&signer)
//!     .unwrap();
//! let batch = BatchBuilder::new().with_transactions(vec![txn]).build(&signer).unwrap();
//! let body = BatchList::new(vec![batch]).to_bytes();
//! assert!(!body.is_empty());
//! ```

use bcfl_protos::batch as pb_batch;
use bcfl_protos::transaction as pb_txn;
use protobuf::{Message as _, RepeatedField};
use sha2::{Digest, Sha512};

use super::keys::Signer;

/// A transaction or batch that cannot be built or decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// A required builder field was not set.
    #[error("missing field: {0}")]
    MissingField(&'static str),
    /// A field has a value a validator would reject.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Protobuf encoding or decoding failed.
    #[error("protobuf: {0}")]
    Protobuf(#[from] protobuf::ProtobufError),
}

/// Whether `prefix` is a valid input/output: lowercase, even-length hex, at most 70 characters.
pub fn is_address_prefix(prefix: &str) -> bool {
    prefix.len() <= 70
        && prefix.len() % 2 == 0
        && prefix
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `id` is a header signature (a transaction, batch or block id): 128 lowercase hex.
pub fn is_header_signature(id: &str) -> bool {
    id.len() == 128 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The lowercase hex SHA-512 of `payload`, as in `payload_sha512`.
pub fn payload_sha512(payload: &[u8]) -> String {
    hex::encode(Sha512::digest(payload))
}

/// The decoded header of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransactionHeader {
    batcher_public_key: String,
    dependencies: Vec<String>,
    family_name: String,
    family_version: String,
    inputs: Vec<String>,
    nonce: String,
    outputs: Vec<String>,
    payload_sha512: String,
    signer_public_key: String,
}

impl TransactionHeader {
    /// Public key of the batch signer.
    pub fn batcher_public_key(&self) -> &str {
        &self.batcher_public_key
    }
    /// Ids of transactions that must commit first.
    pub fn dependencies(&self) -> &[String] {
        &self.dependencies
    }
    /// Transaction family name.
    pub fn family_name(&self) -> &str {
        &self.family_name
    }
    /// Transaction family version.
    pub fn family_version(&self) -> &str {
        &self.family_version
    }
    /// Address prefixes the transaction may read.
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }
    /// Free-form nonce that makes otherwise equal transactions distinct.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }
    /// Address prefixes the transaction may write.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }
    /// Hex SHA-512 of the payload.
    pub fn payload_sha512(&self) -> &str {
        &self.payload_sha512
    }
    /// Public key of the transaction signer.
    pub fn signer_public_key(&self) -> &str {
        &self.signer_public_key
    }

    fn to_proto(&self) -> pb_txn::TransactionHeader {
        let mut h = pb_txn::TransactionHeader::new();
        h.set_batcher_public_key(self.batcher_public_key.clone());
        h.set_dependencies(RepeatedField::from_vec(self.dependencies.clone()));
        h.set_family_name(self.family_name.clone());
        h.set_family_version(self.family_version.clone());
        h.set_inputs(RepeatedField::from_vec(self.inputs.clone()));
        h.set_nonce(self.nonce.clone());
        h.set_outputs(RepeatedField::from_vec(self.outputs.clone()));
        h.set_payload_sha512(self.payload_sha512.clone());
        h.set_signer_public_key(self.signer_public_key.clone());
        h
    }

    fn from_proto(mut h: pb_txn::TransactionHeader) -> Self {
        Self {
            batcher_public_key: h.take_batcher_public_key(),
            dependencies: h.take_dependencies().into_vec(),
            family_name: h.take_family_name(),
            family_version: h.take_family_version(),
            inputs: h.take_inputs().into_vec(),
            nonce: h.take_nonce(),
            outputs: h.take_outputs().into_vec(),
            payload_sha512: h.take_payload_sha512(),
            signer_public_key: h.take_signer_public_key(),
        }
    }
}

/// A signed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    header: TransactionHeader,
    header_bytes: Vec<u8>,
    header_signature: String,
    payload: Vec<u8>,
}

impl Transaction {
    /// The transaction id (its header signature).
    pub fn id(&self) -> &str {
        &self.header_signature
    }
    /// The decoded header.
    pub fn header(&self) -> &TransactionHeader {
        &self.header
    }
    /// The exact signed header bytes.
    pub fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Decodes a protobuf transaction (the header is parsed from its stored bytes).
    pub fn from_proto(mut txn: pb_txn::Transaction) -> Result<Self, ProtocolError> {
        let header_bytes = txn.take_header();
        let header = pb_txn::TransactionHeader::parse_from_bytes(&header_bytes)?;
        Ok(Self {
            header: TransactionHeader::from_proto(header),
            header_bytes,
            header_signature: txn.take_header_signature(),
            payload: txn.take_payload(),
        })
    }

    /// The protobuf form.
    pub fn to_proto(&self) -> pb_txn::Transaction {
        let mut txn = pb_txn::Transaction::new();
        txn.set_header(self.header_bytes.clone());
        txn.set_header_signature(self.header_signature.clone());
        txn.set_payload(self.payload.clone());
        txn
    }

    /// Whether the signature verifies over the stored header bytes and the payload hash matches.
    pub fn verify(&self) -> bool {
        let Ok(key) = super::keys::PublicKey::from_hex(&self.header.signer_public_key) else {
            return false;
        };
        key.verify(&self.header_bytes, &self.header_signature)
            && payload_sha512(&self.payload) == self.header.payload_sha512
    }
}

/// Builds and signs a [`Transaction`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct TransactionBuilder {
    family_name: Option<String>,
    family_version: Option<String>,
    inputs: Vec<String>,
    outputs: Vec<String>,
    dependencies: Vec<String>,
    nonce: Option<String>,
    payload: Option<Vec<u8>>,
    batcher_public_key: Option<String>,
}

impl TransactionBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the family name (required).
    pub fn with_family_name(mut self, name: impl Into<String>) -> Self {
        self.family_name = Some(name.into());
        self
    }
    /// Sets the family version (required).
    pub fn with_family_version(mut self, version: impl Into<String>) -> Self {
        self.family_version = Some(version.into());
        self
    }
    /// Sets the readable address prefixes.
    pub fn with_inputs(mut self, inputs: Vec<String>) -> Self {
        self.inputs = inputs;
        self
    }
    /// Sets the writable address prefixes.
    pub fn with_outputs(mut self, outputs: Vec<String>) -> Self {
        self.outputs = outputs;
        self
    }
    /// Sets the ids of transactions that must commit first.
    pub fn with_dependencies(mut self, dependencies: Vec<String>) -> Self {
        self.dependencies = dependencies;
        self
    }
    /// Sets the nonce; without one, [`build`](Self::build) uses 32 random hex characters.
    pub fn with_nonce(mut self, nonce: impl Into<String>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }
    /// Sets the payload (required).
    pub fn with_payload(mut self, payload: Vec<u8>) -> Self {
        self.payload = Some(payload);
        self
    }
    /// Sets the batcher's public key; by default the transaction signer batches it.
    pub fn with_batcher_public_key(mut self, key: impl Into<String>) -> Self {
        self.batcher_public_key = Some(key.into());
        self
    }

    /// Validates the fields, writes the header, and signs it.
    pub fn build(self, signer: &Signer) -> Result<Transaction, ProtocolError> {
        let family_name = self
            .family_name
            .filter(|n| !n.is_empty())
            .ok_or(ProtocolError::MissingField("family_name"))?;
        let family_version = self
            .family_version
            .filter(|v| !v.is_empty())
            .ok_or(ProtocolError::MissingField("family_version"))?;
        let payload = self.payload.ok_or(ProtocolError::MissingField("payload"))?;
        for (field, list) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            if let Some(bad) = list.iter().find(|a| !is_address_prefix(a)) {
                return Err(ProtocolError::InvalidField {
                    field,
                    reason: format!("{bad:?} is not lowercase even-length hex of <= 70 chars"),
                });
            }
        }
        if let Some(bad) = self.dependencies.iter().find(|d| !is_header_signature(d)) {
            return Err(ProtocolError::InvalidField {
                field: "dependencies",
                reason: format!("{bad:?} is not a transaction id"),
            });
        }
        let signer_key = signer.public_key().as_hex().to_owned();
        let batcher_public_key = self
            .batcher_public_key
            .unwrap_or_else(|| signer_key.clone());
        let nonce = self.nonce.unwrap_or_else(random_nonce);
        let header = TransactionHeader {
            batcher_public_key,
            dependencies: self.dependencies,
            family_name,
            family_version,
            inputs: self.inputs,
            nonce,
            outputs: self.outputs,
            payload_sha512: payload_sha512(&payload),
            signer_public_key: signer_key,
        };
        let header_bytes = header.to_proto().write_to_bytes()?;
        let header_signature = signer.sign(&header_bytes);
        Ok(Transaction {
            header,
            header_bytes,
            header_signature,
            payload,
        })
    }
}

/// 128 random bits as 32 hex characters.
pub fn random_nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The decoded header of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeader {
    signer_public_key: String,
    transaction_ids: Vec<String>,
}

impl BatchHeader {
    /// Public key of the batch signer.
    pub fn signer_public_key(&self) -> &str {
        &self.signer_public_key
    }
    /// The transactions' ids, in order.
    pub fn transaction_ids(&self) -> &[String] {
        &self.transaction_ids
    }
}

/// A signed batch of transactions that commit or fail together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    header: BatchHeader,
    header_bytes: Vec<u8>,
    header_signature: String,
    transactions: Vec<Transaction>,
    trace: bool,
}

impl Batch {
    /// The batch id (its header signature).
    pub fn id(&self) -> &str {
        &self.header_signature
    }
    /// The decoded header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }
    /// The exact signed header bytes.
    pub fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }
    /// The transactions, in order.
    pub fn transactions(&self) -> &[Transaction] {
        &self.transactions
    }
    /// Whether the validator should log this batch's progress.
    pub fn trace(&self) -> bool {
        self.trace
    }

    /// The protobuf form.
    pub fn to_proto(&self) -> pb_batch::Batch {
        let mut batch = pb_batch::Batch::new();
        batch.set_header(self.header_bytes.clone());
        batch.set_header_signature(self.header_signature.clone());
        batch.set_transactions(
            self.transactions
                .iter()
                .map(Transaction::to_proto)
                .collect(),
        );
        batch.set_trace(self.trace);
        batch
    }

    /// Decodes a protobuf batch.
    pub fn from_proto(mut batch: pb_batch::Batch) -> Result<Self, ProtocolError> {
        let header_bytes = batch.take_header();
        let mut header = pb_batch::BatchHeader::parse_from_bytes(&header_bytes)?;
        let transactions = batch
            .take_transactions()
            .into_iter()
            .map(Transaction::from_proto)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            header: BatchHeader {
                signer_public_key: header.take_signer_public_key(),
                transaction_ids: header.take_transaction_ids().into_vec(),
            },
            header_bytes,
            header_signature: batch.take_header_signature(),
            transactions,
            trace: batch.get_trace(),
        })
    }

    /// Whether every signature, payload hash, batcher key and the id list check out, as the
    /// validator's signature and structure verifiers require.
    pub fn verify(&self) -> bool {
        let Ok(key) = super::keys::PublicKey::from_hex(&self.header.signer_public_key) else {
            return false;
        };
        key.verify(&self.header_bytes, &self.header_signature)
            && self.transactions.len() == self.header.transaction_ids.len()
            && self
                .transactions
                .iter()
                .zip(&self.header.transaction_ids)
                .all(|(t, id)| {
                    t.id() == id
                        && t.header.batcher_public_key == self.header.signer_public_key
                        && t.verify()
                })
    }
}

/// Builds and signs a [`Batch`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct BatchBuilder {
    transactions: Vec<Transaction>,
    trace: bool,
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the transactions (at least one, ids unique), in execution order.
    pub fn with_transactions(mut self, transactions: Vec<Transaction>) -> Self {
        self.transactions = transactions;
        self
    }
    /// Appends one transaction.
    pub fn with_transaction(mut self, transaction: Transaction) -> Self {
        self.transactions.push(transaction);
        self
    }
    /// Asks the validator to trace the batch.
    pub fn with_trace(mut self, trace: bool) -> Self {
        self.trace = trace;
        self
    }

    /// Checks the transactions and signs the header.
    pub fn build(self, signer: &Signer) -> Result<Batch, ProtocolError> {
        if self.transactions.is_empty() {
            return Err(ProtocolError::MissingField("transactions"));
        }
        let signer_key = signer.public_key().as_hex();
        let mut ids: Vec<String> = Vec::with_capacity(self.transactions.len());
        for txn in &self.transactions {
            if txn.header.batcher_public_key != signer_key {
                return Err(ProtocolError::InvalidField {
                    field: "transactions",
                    reason: format!(
                        "transaction {} names batcher {}, not the batch signer {signer_key}",
                        txn.id(),
                        txn.header.batcher_public_key
                    ),
                });
            }
            if ids.iter().any(|id| id == txn.id()) {
                return Err(ProtocolError::InvalidField {
                    field: "transactions",
                    reason: format!("transaction {} appears twice", txn.id()),
                });
            }
            ids.push(txn.id().to_owned());
        }
        let mut header = pb_batch::BatchHeader::new();
        header.set_signer_public_key(signer_key.to_owned());
        header.set_transaction_ids(RepeatedField::from_vec(ids.clone()));
        let header_bytes = header.write_to_bytes()?;
        let header_signature = signer.sign(&header_bytes);
        Ok(Batch {
            header: BatchHeader {
                signer_public_key: signer_key.to_owned(),
                transaction_ids: ids,
            },
            header_bytes,
            header_signature,
            transactions: self.transactions,
            trace: self.trace,
        })
    }
}

/// The body of `POST /batches`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchList {
    batches: Vec<Batch>,
}

impl BatchList {
    /// A list of batches.
    pub fn new(batches: Vec<Batch>) -> Self {
        Self { batches }
    }
    /// The batches.
    pub fn batches(&self) -> &[Batch] {
        &self.batches
    }
    /// The batch ids, in order.
    pub fn ids(&self) -> Vec<String> {
        self.batches.iter().map(|b| b.id().to_owned()).collect()
    }
    /// The serialized `BatchList` protobuf.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut list = pb_batch::BatchList::new();
        list.set_batches(self.batches.iter().map(Batch::to_proto).collect());
        list.write_to_bytes()
            .expect("encoding a BatchList of set fields cannot fail")
    }
    /// Decodes a serialized `BatchList`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let mut list = pb_batch::BatchList::parse_from_bytes(bytes)?;
        let batches = list
            .take_batches()
            .into_iter()
            .map(Batch::from_proto)
            .collect::<Result<_, _>>()?;
        Ok(Self { batches })
    }
}

#[cfg(test)]
mod tests;
