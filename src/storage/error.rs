//! [`StorageError`]: what the aggregate storage reports.

use carbonara::aggregation::Method;
use carbonara::codec::DecodeError;
use carbonara::split::SplitError;
use carbonara::unaggregated::TailError;

use super::keys::KeyError;

/// Why a storage operation failed. Absence of an object where absence is
/// normal (a metric without measures yet, a split never written) is not an
/// error: those methods return `Ok(None)` or an empty result.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The storage URL could not be understood. Never contains credentials.
    #[error("invalid storage url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL without its query string (which may hold secrets).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The backend could not be opened (bad configuration, unreachable
    /// directory).
    #[error("cannot open storage {url:?}")]
    Open {
        /// The URL without its query string.
        url: String,
        /// The underlying error.
        #[source]
        source: object_store::Error,
    },
    /// The object store failed on an object (I/O, network, permissions).
    #[error("object store operation on {key} failed")]
    ObjectStore {
        /// The object key (or prefix) involved.
        key: String,
        /// The underlying error.
        #[source]
        source: object_store::Error,
    },
    /// An object exists but its bytes are not what its key promises.
    #[error("corrupt object {key}")]
    Corrupt {
        /// The object key.
        key: String,
        /// What is wrong with it.
        #[source]
        source: CorruptObject,
    },
    /// A split object written with a layout version this build does not know
    /// (a newer gnocchid wrote it).
    #[error("cannot read object {key}")]
    UnknownLayout {
        /// The object key.
        key: String,
        /// The parse failure.
        #[source]
        source: KeyError,
    },
    /// The archive policy has no such `(method, granularity)` aggregation.
    #[error("aggregation method {method} at granularity {granularity:?} ns is not in archive policy {policy:?}")]
    NoSuchAggregation {
        /// The policy name.
        policy: String,
        /// The method asked for.
        method: Method,
        /// The granularity asked for, if one was.
        granularity: Option<i64>,
    },
    /// Flushing written objects to stable storage failed: nothing written
    /// since the last successful sync can be trusted to survive a crash.
    #[error("cannot flush the storage to disk")]
    Sync(#[source] std::io::Error),
    /// The thread running local storage work failed (a bug, reported
    /// rather than taking metricd down with it).
    #[error("storage worker thread failed: {0}")]
    Worker(String),
    /// The measures given to [`super::AggregateStore::apply_measures`] are
    /// malformed (different numbers of timestamps and values).
    #[error("invalid measures")]
    InvalidMeasures(#[source] TailError),
}

/// What was found wrong inside a stored object.
#[derive(Debug, thiserror::Error)]
pub enum CorruptObject {
    /// The bytes do not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The decoded split breaks carbonara's invariants.
    #[error(transparent)]
    Split(#[from] SplitError),
    /// The decoded tail breaks carbonara's invariants.
    #[error(transparent)]
    Tail(#[from] TailError),
    /// The object decodes to another split than its key names.
    #[error("object holds split ({found_granularity} ns, start {found_start}), key names ({granularity} ns, start {start})")]
    KeyMismatch {
        /// Granularity in the key.
        granularity: i64,
        /// Start in the key.
        start: i64,
        /// Granularity in the object.
        found_granularity: i64,
        /// Start in the object.
        found_start: i64,
    },
}

impl StorageError {
    pub(crate) fn store(key: impl ToString, source: object_store::Error) -> StorageError {
        StorageError::ObjectStore {
            key: key.to_string(),
            source,
        }
    }

    pub(crate) fn corrupt(key: impl ToString, source: impl Into<CorruptObject>) -> StorageError {
        StorageError::Corrupt {
            key: key.to_string(),
            source: source.into(),
        }
    }
}
