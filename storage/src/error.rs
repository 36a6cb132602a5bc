//! The one error type of the storage crate.

use sled::transaction::TransactionError;

use crate::task::TaskStatus;

/// Anything that can go wrong below the store's API.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A record did not encode or decode.
    #[error("record encoding: {0}")]
    Serde(#[from] serde_json::Error),
    /// A file (artifact) operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Bytes in the database that this code did not write (or a damaged key).
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The transition table does not allow this status change; nothing was written.
    #[error("task {id} cannot go from {} to {}", from.name(), to.name())]
    IllegalTransition {
        /// The task.
        id: u64,
        /// Its stored status.
        from: TaskStatus,
        /// The status asked for.
        to: TaskStatus,
    },
    /// An update tried to change a status outside [`crate::Store::transition`].
    #[error("task {0}: a status changes only through a transition")]
    StatusChange(u64),
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Sled(e),
        }
    }
}

impl StoreError {
    /// True when the write failed for want of disk space (ENOSPC, or sled's own "no space").
    pub fn is_disk_full(&self) -> bool {
        let io = match self {
            StoreError::Io(e) => Some(e),
            StoreError::Sled(sled::Error::Io(e)) => Some(e),
            _ => None,
        };
        io.is_some_and(|e| e.kind() == std::io::ErrorKind::StorageFull)
    }
}

/// The storage crate's result.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
