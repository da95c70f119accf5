//! Keyed tables kept in a log: the storage of the camera registry.
//!
//! A table is a compacted topic read as a map: the latest value per key wins and
//! a tombstone (no value) deletes the key. [`TableLog`] is what a reader of the
//! table needs — write a value or a tombstone and wait until it is durable, and
//! read the whole table back — so the registry rebuilds its view after a restart
//! from the log alone, with no other database.
//!
//! Two implementations: [`MemoryTable`] (one process: `streetscope run`, unit
//! tests of code above the table) and the Kafka one (`kafka::KafkaTable`), over a
//! compacted topic.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Why a table read or write failed. The message never holds secrets.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("table {table}: {message}")]
pub struct TableError {
    /// The table (topic) name.
    pub table: String,
    /// What went wrong.
    pub message: String,
}

/// A keyed table kept in a log.
pub trait TableLog: Send + Sync + 'static {
    /// The table's name (the topic).
    fn name(&self) -> &str;

    /// Writes `value` under `key`, or deletes `key` when `value` is `None`
    /// (a tombstone); resolves once the write is durable.
    fn write(&self, key: &str, value: Option<Vec<u8>>) -> impl Future<Output = Result<(), TableError>> + Send;

    /// Reads the whole table from the start of the log up to its current end:
    /// the latest value of each key, deleted keys left out.
    fn read_all(&self) -> impl Future<Output = Result<BTreeMap<String, Vec<u8>>, TableError>> + Send;
}

/// A table in memory, shared by clones.
#[derive(Debug, Clone, Default)]
pub struct MemoryTable {
    name: Arc<str>,
    rows: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl MemoryTable {
    /// An empty table called `name`.
    pub fn new(name: &str) -> Self {
        Self { name: Arc::from(name), rows: Arc::default() }
    }
}

impl TableLog for MemoryTable {
    fn name(&self) -> &str {
        &self.name
    }

    async fn write(&self, key: &str, value: Option<Vec<u8>>) -> Result<(), TableError> {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        match value {
            Some(v) => rows.insert(key.to_owned(), v),
            None => rows.remove(key),
        };
        Ok(())
    }

    async fn read_all(&self) -> Result<BTreeMap<String, Vec<u8>>, TableError> {
        Ok(self.rows.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}
