//! General facts about the installation (`/systeminfo`), and the root of the
//! API's OpenAPI document: its `info`, server, security scheme, tags and the
//! error envelope schema every module's error responses refer to.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::error::{ErrorBody, ErrorsBody};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{ApiResult, ApiSettings};
use crate::security::Caller;

/// The root of the OpenAPI document; [`super::openapi`] merges every other
/// module's `Doc` into it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Wharf API",
        version = env!("CARGO_PKG_VERSION"),
        description = "The REST API of Wharf, compatible with Harbor's v2.0 API \
            (`/api/v2.0`): the same paths, operation ids, field names, status codes and \
            error envelope (`{\"errors\":[{\"code\",\"message\"}]}`), so Harbor clients, \
            scripts and Terraform providers work unchanged. Authenticate with HTTP Basic \
            (a user's name and password, or a robot's login name and secret); requests \
            without credentials are anonymous and see only what anonymous users may see."
    ),
    servers((url = "/api/v2.0", description = "This Wharf instance")),
    paths(get_system_info),
    components(schemas(ErrorsBody, ErrorBody, GeneralInfo)),
    modifiers(&BasicAuth),
    security(("basic" = [])),
    tags(
        (name = "user", description = "Local user accounts"),
        (name = "project", description = "Projects and their audit logs"),
        (name = "member", description = "Project members and their roles"),
        (name = "projectMetadata", description = "Project settings (metadata)"),
        (name = "robot", description = "Robot accounts for CI and automation"),
        (name = "auditlog", description = "Who did what, when and from where"),
        (name = "systeminfo", description = "Facts about this installation"),
        (name = "repository", description = "Repositories of a project"),
        (name = "artifact", description = "Artifacts, their tags, additions and accessories"),
        (name = "label", description = "Global and project labels and their artifacts"),
        (name = "search", description = "Projects and repositories by name"),
        (name = "statistic", description = "Counts of projects and repositories, storage used"),
        (name = "quota", description = "Per-project storage quotas"),
        (name = "immutable", description = "Tag immutability rules"),
        (name = "retention", description = "Tag retention policies and their runs"),
        (name = "gc", description = "Garbage collection runs and schedule"),
        (name = "purge", description = "Audit log purge runs and schedule"),
        (name = "webhook", description = "Webhook policies of a project and their deliveries"),
        (name = "webhookjob", description = "Webhook deliveries of a policy (Harbor's deprecated jobs API)"),
        (name = "registry", description = "Remote registries replication copies to and from"),
        (name = "replication", description = "Replication policies, their executions and tasks"),
    )
)]
pub struct Doc;

/// Adds the `basic` HTTP security scheme the document's security
/// requirement names.
struct BasicAuth;

impl Modify for BasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "A username and password, or a robot account's login name \
                         (`robot$...`) and secret",
                    ))
                    .build(),
            ),
        );
    }
}

/// Mount this module's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/systeminfo", web::get().to(get_system_info));
}

/// Harbor's `GeneralInfo`, the part Wharf has. Anonymous callers get only
/// what the sign-in page needs (auth mode, self-registration, version), as
/// in Harbor; signed-in callers also get the rest.
#[derive(Debug, Serialize, ToSchema)]
pub struct GeneralInfo {
    /// The server's clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_time: Option<DateTime<Utc>>,
    /// The host (and port) `docker` commands use: that of `external_url`,
    /// or empty when it is not configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_url: Option<String>,
    /// The URL Wharf is reached at, or empty when it is not configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
    /// Always `db_auth`: users live in Wharf's database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_auth_mode: Option<bool>,
    /// `everyone`: every signed-in user may create projects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_creation_restriction: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_registration: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_ca_root: Option<bool>,
    /// Wharf's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub harbor_version: Option<String>,
    /// The blob store backend (`filesystem`, `s3`, `memory`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_storage_provider_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_enable: Option<bool>,
}

/// `host[:port]` of `external_url`, empty when absent or unparsable.
fn registry_host(external_url: Option<&str>) -> String {
    let Some(url) = external_url.and_then(|u| url::Url::parse(u).ok()) else {
        return String::new();
    };
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => String::new(),
    }
}

/// General facts about this installation; anonymous callers get fewer.
#[utoipa::path(
    get,
    path = "/systeminfo",
    operation_id = "getSystemInfo",
    tag = "systeminfo",
    security((), ("basic" = [])),
    responses(
        (status = 200, description = "The facts the caller may see", body = GeneralInfo),
        (status = 500, description = "Internal error", body = ErrorsBody),
    )
)]
pub async fn get_system_info(
    caller: Caller,
    settings: web::Data<ApiSettings>,
) -> ApiResult<HttpResponse> {
    let mut info = GeneralInfo {
        current_time: None,
        registry_url: None,
        external_url: None,
        auth_mode: Some("db_auth".into()),
        primary_auth_mode: Some(false),
        project_creation_restriction: None,
        self_registration: Some(false),
        has_ca_root: None,
        harbor_version: Some(settings.version.clone()),
        registry_storage_provider_name: None,
        read_only: None,
        notification_enable: None,
    };
    if caller.principal.is_authenticated() {
        let external = settings.external_url.as_deref();
        info.current_time = Some(Utc::now());
        info.registry_url = Some(registry_host(external));
        info.external_url = Some(external.unwrap_or_default().to_owned());
        info.project_creation_restriction = Some("everyone".into());
        info.has_ca_root = Some(false);
        info.registry_storage_provider_name = Some(settings.storage_provider.clone());
        info.read_only = Some(false);
        // Webhooks are always available.
        info.notification_enable = Some(true);
    }
    Ok(HttpResponse::Ok().json(info))
}

#[cfg(test)]
mod tests {
    use super::registry_host;

    #[test]
    fn registry_host_is_the_host_and_port_of_the_external_url() {
        assert_eq!(
            registry_host(Some("https://wharf.example.com")),
            "wharf.example.com"
        );
        assert_eq!(
            registry_host(Some("http://10.0.0.5:8080/")),
            "10.0.0.5:8080"
        );
        assert_eq!(registry_host(Some("not a url")), "");
        assert_eq!(registry_host(None), "");
    }
}
