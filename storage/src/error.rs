//! The one error type of the storage crate.

use sled::transaction::TransactionError;

/// Anything that can go wrong below the store's API.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A record did not encode or decode as JSON.
    #[error("record encoding: {0}")]
    Serde(#[from] serde_json::Error),
    /// A file operation failed (artifact retention).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Bytes in the database that this code did not write (or a damaged key).
    #[error("corrupt store: {0}")]
    Corrupt(String),
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Sled(e),
        }
    }
}

/// The result of every store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
