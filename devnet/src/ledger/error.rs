//! Errors of the ledger core.

/// Everything that can go wrong inside the ledger core (storage, keys, sockets).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A redb storage failure.
    #[error("storage: {0}")]
    Storage(String),
    /// Stored data that does not decode, or a missing record the chain refers to.
    #[error("corrupt ledger data: {0}")]
    Corrupt(String),
    /// A Merkle state failure.
    #[error("state: {0}")]
    State(String),
    /// A protobuf encoding failure.
    #[error("protobuf: {0}")]
    Protobuf(#[from] protobuf::ProtobufError),
    /// A ZMQ socket failure.
    #[error("zmq: {0}")]
    Zmq(#[from] zmq::Error),
    /// A file-system failure (data dir, key file).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The validator key file is unusable.
    #[error("validator key: {0}")]
    Key(String),
    /// A bad configuration value.
    #[error("configuration: {0}")]
    Config(String),
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for LedgerError {
            fn from(err: $t) -> Self {
                LedgerError::Storage(err.to_string())
            }
        }
    )*};
}

storage_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<transact::state::merkle::StateDatabaseError> for LedgerError {
    fn from(err: transact::state::merkle::StateDatabaseError) -> Self {
        LedgerError::State(err.to_string())
    }
}

impl From<LedgerError> for crate::view::ViewError {
    fn from(err: LedgerError) -> Self {
        crate::view::ViewError(err.to_string())
    }
}

/// Result alias of the ledger core.
pub type Result<T, E = LedgerError> = std::result::Result<T, E>;
