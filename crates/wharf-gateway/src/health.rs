//! `GET /api/v2.0/health` and `GET /api/v2.0/ping`, in Harbor's shapes.
//!
//! Health answers 200 when every component is healthy and 503 otherwise (Harbor
//! always answers 200; a status code lets load balancers and Kubernetes probes use
//! it directly). The body is the same either way:
//! `{"status":"healthy","components":[{"name":"database","status":"healthy"},…]}`.
//! An unhealthy component carries a short `error`; the details go to the log only,
//! since this endpoint is unauthenticated.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use futures_util::future::{BoxFuture, join_all};
use serde::Serialize;
use wharf_registry::Registry;

/// How long one component may take before it counts as unhealthy.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// One thing `/api/v2.0/health` checks.
pub trait HealthProbe: Send + Sync + 'static {
    /// Component name in the response (`database`, `storage`).
    fn name(&self) -> &'static str;
    /// `Err` holds the detail for the log.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// The components reported by the health endpoint (app data for [`configure`]).
#[derive(Clone, Default)]
pub struct HealthChecks {
    probes: Vec<Arc<dyn HealthProbe>>,
}

impl HealthChecks {
    /// The standard probes: the registry's database and blob storage.
    pub fn for_registry(registry: &Registry) -> Self {
        Self::default()
            .with(DatabaseProbe(registry.clone()))
            .with(StorageProbe(registry.clone()))
    }

    pub fn with(mut self, probe: impl HealthProbe) -> Self {
        self.probes.push(Arc::new(probe));
        self
    }

    /// Run every probe concurrently.
    pub async fn report(&self) -> HealthReport {
        let checks = self.probes.iter().map(|probe| async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, probe.check()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
            };
            match outcome {
                Ok(()) => ComponentHealth { name: probe.name(), status: Status::Healthy, error: None },
                Err(detail) => {
                    tracing::warn!(component = probe.name(), error = %detail, "health check failed");
                    ComponentHealth {
                        name: probe.name(),
                        status: Status::Unhealthy,
                        error: Some(format!("{} check failed", probe.name())),
                    }
                }
            }
        });
        let components = join_all(checks).await;
        let status = if components.iter().all(|c| c.status == Status::Healthy) {
            Status::Healthy
        } else {
            Status::Unhealthy
        };
        HealthReport { status, components }
    }
}

/// Body of `/api/v2.0/health`.
#[derive(Debug, Serialize)]
pub struct HealthReport {
    pub status: Status,
    pub components: Vec<ComponentHealth>,
}

#[derive(Debug, Serialize)]
pub struct ComponentHealth {
    pub name: &'static str,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Unhealthy,
}

struct DatabaseProbe(Registry);

impl HealthProbe for DatabaseProbe {
    fn name(&self) -> &'static str {
        "database"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.check_database().await.map_err(|e| e.to_string()) })
    }
}

struct StorageProbe(Registry);

impl HealthProbe for StorageProbe {
    fn name(&self) -> &'static str {
        "storage"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let store = self.0.store();
            store
                .check()
                .await
                .map_err(|e| format!("{} storage: {e}", store.backend_name()))
        })
    }
}

/// Mount the two endpoints. Needs `web::Data<HealthChecks>` in the app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v2.0/health", web::get().to(health))
        .route("/api/v2.0/ping", web::get().to(ping));
}

async fn health(checks: web::Data<HealthChecks>) -> HttpResponse {
    let report = checks.report().await;
    let mut response = match report.status {
        Status::Healthy => HttpResponse::Ok(),
        Status::Unhealthy => HttpResponse::ServiceUnavailable(),
    };
    response
        .insert_header(("Cache-Control", "no-store"))
        .json(report)
}

/// The server binds only after migrations ran, so answering at all means ready.
async fn ping() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("Pong")
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, http::StatusCode, test};

    struct Fixed(&'static str, bool);

    impl HealthProbe for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        fn check(&self) -> BoxFuture<'_, Result<(), String>> {
            let ok = self.1;
            Box::pin(async move {
                if ok {
                    Ok(())
                } else {
                    Err("secret detail".into())
                }
            })
        }
    }

    async fn get(checks: HealthChecks, path: &str) -> (StatusCode, String, String) {
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(checks))
                .configure(configure),
        )
        .await;
        let res = test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
        let status = res.status();
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = test::read_body(res).await;
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[actix_web::test]
    async fn healthy_components_give_200_in_harbors_shape() {
        let checks = HealthChecks::default()
            .with(Fixed("database", true))
            .with(Fixed("storage", true));
        let (status, _, body) = get(checks, "/api/v2.0/health").await;
        assert_eq!(status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"status": "healthy", "components": [
                {"name": "database", "status": "healthy"},
                {"name": "storage", "status": "healthy"},
            ]})
        );
    }

    #[actix_web::test]
    async fn one_unhealthy_component_gives_503_without_details() {
        let checks = HealthChecks::default()
            .with(Fixed("database", false))
            .with(Fixed("storage", true));
        let (status, _, body) = get(checks, "/api/v2.0/health").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "unhealthy");
        assert_eq!(json["components"][0]["status"], "unhealthy");
        assert_eq!(json["components"][1]["status"], "healthy");
        assert!(!body.contains("secret detail"));
    }

    #[actix_web::test]
    async fn ping_answers_pong_as_text() {
        let (status, content_type, body) = get(HealthChecks::default(), "/api/v2.0/ping").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/plain"));
        assert_eq!(body, "Pong");
    }
}
