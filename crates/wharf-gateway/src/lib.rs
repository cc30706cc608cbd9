//! The `wharf` binary's library half: configuration, logging, the embedded
//! PostgreSQL, health endpoints and the HTTP server that wires every Wharf
//! service behind one listener. `main.rs` only parses the command line and
//! dispatches here, so everything is testable without spawning the binary.

pub mod background;
pub mod check;
pub mod cli;
pub mod config;
pub mod database;
pub mod embedded_postgres;
pub mod gc;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod probe;
pub mod replication;
pub mod server;
pub mod telemetry;
pub mod tls;
