//! Integration tests for wharf-auth: real tokens, a real registry, real
//! PostgreSQL, real HTTP clients.

mod challenges;
mod grants;
mod keys;
mod rbac_matrix;
mod sessions;
mod support;
mod throttling;
mod token_attacks;
