//! One async lock per workflow id with a write under way: writes of one id
//! are serialized on this host, writes of different ids are not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// The locks of the ids being written; an id's entry lives while someone
/// holds or waits for it.
#[derive(Debug, Default)]
pub(crate) struct KeyLocks {
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Holds an id's lock; releases it (and drops the entry if nobody waits) on drop.
pub(crate) struct KeyGuard {
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyLocks {
    /// Waits for `key`'s lock.
    pub async fn lock(&self, key: &str) -> KeyGuard {
        let lock = self.map().entry(key.to_owned()).or_default().clone();
        let guard = lock.lock_owned().await;
        KeyGuard {
            locks: self.locks.clone(),
            key: key.to_owned(),
            guard: Some(guard),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.locks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        self.guard = None;
        let mut map = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map's own handle left: nobody holds or waits for it.
        if map
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_writer_per_key_and_entries_do_not_leak() {
        let locks = KeyLocks::default();
        let a = locks.lock("a").await;
        // Another key is free.
        let b = locks.lock("b").await;
        // The same key waits.
        let again =
            tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock("a")).await;
        assert!(again.is_err(), "a second lock of one key must wait");
        drop(a);
        let a2 = tokio::time::timeout(std::time::Duration::from_secs(5), locks.lock("a"))
            .await
            .expect("released");
        drop((a2, b));
        assert!(locks.map().is_empty(), "no entry outlives its holders");
    }
}
