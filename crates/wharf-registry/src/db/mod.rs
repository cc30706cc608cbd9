//! Registry metadata in PostgreSQL, one module per table. Plain SQL; functions
//! take a pool for single statements and a connection for work inside a
//! caller's transaction.

pub mod blob_locks;
pub mod blobs;
pub mod gc;
pub mod manifests;
pub mod repositories;
pub mod tags;
pub mod uploads;
