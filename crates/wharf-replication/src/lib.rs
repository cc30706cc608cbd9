//! Replication between registries (issue 6): a client for any Docker
//! Registry v2 / OCI distribution server (Basic or bearer-token auth),
//! the copy engine that moves artifacts between two such servers, the
//! policy filters and destination naming of Harbor's replication policies,
//! and the sealing of endpoint credentials at rest.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use wharf_replication::{Copier, CopyOptions, Endpoint, RegistryClient};
//! # async fn demo() -> Result<(), wharf_replication::ReplicationError> {
//! let src = Arc::new(RegistryClient::new(Endpoint::new("http://a:5000")?)?);
//! let dst = Arc::new(RegistryClient::new(Endpoint::new("http://b:5000")?.with_basic("u", "p"))?);
//! let copier = Copier::new(src, dst, CopyOptions::default());
//! copier.copy_tag("library/app", "library/app", "v1").await?;
//! println!("{:?}", copier.report());
//! # Ok(()) }
//! ```

pub mod client;
pub mod copy;
pub mod crypto;
pub mod events;
pub mod filter;
pub mod pattern;
pub mod policies;
pub mod proxy;
pub mod registries;

pub use client::{Endpoint, RegistryClient, ReplicationError};
pub use copy::{Copier, CopyOptions, CopyReport};
pub use filter::{Filters, destination_repository};
