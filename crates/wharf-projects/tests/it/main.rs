//! Integration tests for wharf-projects: the role matrix against Harbor's
//! reference copy, and the domain functions against a real PostgreSQL.

mod api_audit;
mod api_members;
mod api_projects;
mod api_robots;
mod api_support;
mod api_system;
mod api_users;
mod members;
mod projects;
mod rbac_matrix;
mod support;
mod users;
