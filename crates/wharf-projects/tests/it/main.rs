//! Integration tests for wharf-projects: the role matrix against Harbor's
//! reference copy, and the domain functions against a real PostgreSQL.

mod members;
mod projects;
mod rbac_matrix;
mod support;
mod users;
