//! Who processes a sack: [`SackLocks`].
//!
//! A metric's tail and splits are read, merged and rewritten by one worker at
//! a time; metricd guarantees it by holding the lock of the metric's sack
//! for the whole read-apply-acknowledge step (and for the janitor's
//! deletion). Embedded, every worker lives in one process and
//! [`InProcessLocks`] is a mutex per sack. Scaled out, metricd processes on
//! several machines share the incoming store and the storage, and the same
//! trait is implemented over a shared service (a PostgreSQL advisory lock
//! or a Redis lease); the guard then also tells when the lock was lost, so
//! the holder stops before acknowledging anything.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::incoming::Sack;

/// Why a lock could not be taken (a shared lock service being unreachable).
#[derive(Debug, thiserror::Error)]
#[error("cannot lock sack {sack}: {reason}")]
pub struct LockError {
    pub sack: u32,
    pub reason: String,
}

/// Held while a sack is processed; dropping it releases the lock.
#[must_use = "the sack is only locked while the guard lives"]
pub struct SackGuard {
    _release: Box<dyn Send + Sync>,
}

impl SackGuard {
    /// A guard that releases by dropping `release` (a mutex guard, or a
    /// handle whose drop hands the release to a background task).
    pub fn new(release: impl Send + Sync + 'static) -> SackGuard {
        SackGuard {
            _release: Box::new(release),
        }
    }
}

impl Debug for SackGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SackGuard")
    }
}

/// Mutual exclusion per sack among every worker that shares an incoming
/// store; see the module docs.
#[async_trait]
pub trait SackLocks: Send + Sync + Debug {
    /// Waits until this caller alone holds `sack`.
    async fn lock(&self, sack: Sack) -> Result<SackGuard, LockError>;
}

/// One process holds every worker: a mutex per sack.
#[derive(Debug)]
pub struct InProcessLocks {
    sacks: Vec<Arc<Mutex<()>>>,
}

impl InProcessLocks {
    pub fn new(sack_count: u32) -> InProcessLocks {
        InProcessLocks {
            sacks: (0..sack_count).map(|_| Arc::new(Mutex::new(()))).collect(),
        }
    }
}

#[async_trait]
impl SackLocks for InProcessLocks {
    async fn lock(&self, sack: Sack) -> Result<SackGuard, LockError> {
        let mutex = self.sacks.get(sack.0 as usize).ok_or_else(|| LockError {
            sack: sack.0,
            reason: format!("there are only {} sacks", self.sacks.len()),
        })?;
        Ok(SackGuard::new(mutex.clone().lock_owned().await))
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[tokio::test]
    async fn a_sack_has_one_holder_and_sacks_are_independent() {
        let locks = InProcessLocks::new(2);
        let held = locks.lock(Sack(0)).await.unwrap();
        // Another sack is free.
        let other = locks.lock(Sack(1)).await.unwrap();
        // The same sack waits until the holder lets go.
        assert!(
            locks.lock(Sack(0)).now_or_never().is_none(),
            "sack 0 was locked twice"
        );
        drop(held);
        let again = locks.lock(Sack(0)).await.unwrap();
        drop((again, other));
        assert!(locks.lock(Sack(2)).await.is_err());
    }
}
