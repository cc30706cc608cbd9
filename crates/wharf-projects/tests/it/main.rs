//! Integration tests for wharf-projects: the role matrix against Harbor's
//! reference copy, and the domain functions against a real PostgreSQL.

mod api_artifacts;
mod api_audit;
mod api_immutable;
mod api_labels;
mod api_members;
mod api_projects;
mod api_purge_audit;
mod api_quotas;
mod api_replication;
mod api_repositories;
mod api_retention;
mod api_robots;
mod api_search_statistics;
mod api_support;
mod api_system;
mod api_users;
mod api_webhooks;
mod artifact_support;
mod labels;
mod members;
mod projects;
mod quotas;
mod rbac_matrix;
mod seed_artifacts;
mod support;
mod users;
mod webhook_receiver;
