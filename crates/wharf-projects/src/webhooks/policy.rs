//! Webhook policies (Harbor's notification policies): which events of a
//! project go to which targets. Validated once on the way in
//! ([`PolicySpec::parse`]), stored in `webhook_policies`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};

use super::event::EventType;
use crate::error::{Error, Result, is_unique_violation};
use crate::{Listing, Page};

/// Longest policy name accepted.
pub const MAX_NAME: usize = 256;

/// Most targets one policy may have.
pub const MAX_TARGETS: usize = 16;

/// Where a target's events go: Harbor's notify types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyType {
    /// An HTTP endpoint, sent Harbor's JSON payload or CloudEvents.
    Http,
    /// A Slack incoming webhook, sent a message.
    Slack,
}

impl NotifyType {
    /// Every notify type, in Harbor's order.
    pub const ALL: [NotifyType; 2] = [NotifyType::Http, NotifyType::Slack];

    /// Harbor's spelling: `http`, `slack`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyType::Http => "http",
            NotifyType::Slack => "slack",
        }
    }

    /// Parse Harbor's spelling (exactly, as Harbor compares).
    pub fn parse(s: &str) -> Option<NotifyType> {
        NotifyType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// How an HTTP target's payload is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum PayloadFormat {
    /// Harbor's own JSON payload (`{"type", "occur_at", "operator", "event_data"}`).
    #[default]
    Default,
    /// A CloudEvents 1.0 event in structured JSON mode.
    CloudEvents,
}

impl PayloadFormat {
    /// Every format, in Harbor's order.
    pub const ALL: [PayloadFormat; 2] = [PayloadFormat::Default, PayloadFormat::CloudEvents];

    /// Harbor's spelling: `Default`, `CloudEvents`.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadFormat::Default => "Default",
            PayloadFormat::CloudEvents => "CloudEvents",
        }
    }

    /// Parse Harbor's spelling (exactly).
    pub fn parse(s: &str) -> Option<PayloadFormat> {
        PayloadFormat::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// One validated target of a policy (also its stored JSON, in Harbor's
/// field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// `http` or `slack`.
    #[serde(rename = "type")]
    pub notify_type: NotifyType,
    /// An `http://` or `https://` URL without credentials in it.
    pub address: String,
    /// Sent as the `Authorization` header to HTTP targets (empty: none).
    #[serde(default)]
    pub auth_header: String,
    /// Accept any TLS certificate from this target.
    #[serde(default)]
    pub skip_cert_verify: bool,
    /// The payload shape (always `Default` for Slack, which has its own).
    #[serde(default)]
    pub payload_format: PayloadFormat,
}

/// A target as a client sent it, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetInput {
    /// Harbor's `type`.
    pub notify_type: String,
    pub address: String,
    pub auth_header: String,
    pub skip_cert_verify: bool,
    /// `None` or empty: `Default` for HTTP targets (and required so for Slack).
    pub payload_format: Option<String>,
}

/// A policy as a client sent it, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyInput {
    pub name: String,
    pub description: String,
    pub targets: Vec<TargetInput>,
    pub event_types: Vec<String>,
    pub enabled: bool,
}

/// A policy that passed validation: what [`create_policy`] and
/// [`update_policy`] store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    /// Unique in its project, 1 to [`MAX_NAME`] characters.
    pub name: String,
    pub description: String,
    /// 1 to [`MAX_TARGETS`] targets.
    pub targets: Vec<Target>,
    /// At least one event type, each once, in the order given.
    pub event_types: Vec<EventType>,
    /// A disabled policy sends nothing (and stops its pending retries).
    pub enabled: bool,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}

/// Check an address: `http(s)://host[:port][/path][?query]`, no user name
/// or password (those belong in `auth_header`, which is never shown in logs).
fn parse_address(address: &str) -> Result<String> {
    let address = address.trim();
    if address.is_empty() {
        return Err(invalid("a webhook target needs an address"));
    }
    let url = url::Url::parse(address)
        .map_err(|e| invalid(format!("invalid webhook address {address:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "invalid webhook address {address:?}: use an http:// or https:// URL"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!(
            "invalid webhook address {address:?}: it names no host"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(format!(
            "invalid webhook address for host {}: put credentials in auth_header, not in the URL",
            url.host_str().unwrap_or_default()
        )));
    }
    Ok(address.to_owned())
}

impl TargetInput {
    fn parse(&self, policy: &str) -> Result<Target> {
        let notify_type = NotifyType::parse(&self.notify_type).ok_or_else(|| {
            invalid(format!(
                "unsupported target type {:?} with policy {policy}: use http or slack",
                self.notify_type
            ))
        })?;
        let address = parse_address(&self.address)?;
        let format = self.payload_format.as_deref().filter(|f| !f.is_empty());
        let payload_format = match (notify_type, format) {
            (NotifyType::Slack, Some(_)) => {
                return Err(invalid("set payload format is not allowed for slack"));
            }
            (_, None) => PayloadFormat::Default,
            (NotifyType::Http, Some(f)) => PayloadFormat::parse(f).ok_or_else(|| {
                invalid(format!(
                    "unsupported payload format type: {f} (use Default or CloudEvents)"
                ))
            })?,
        };
        if self.auth_header.contains(['\r', '\n']) {
            return Err(invalid("auth_header must be a single line"));
        }
        Ok(Target {
            notify_type,
            address,
            auth_header: self.auth_header.clone(),
            skip_cert_verify: self.skip_cert_verify,
            payload_format,
        })
    }
}

impl PolicySpec {
    /// Validate a policy as Harbor does (a name, at least one target with a
    /// usable address and type, at least one known event type), refusing
    /// with a message that says what to change.
    pub fn parse(input: &PolicyInput) -> Result<PolicySpec> {
        let name = input.name.trim();
        if name.is_empty() {
            return Err(invalid("a webhook policy needs a name"));
        }
        if name.chars().count() > MAX_NAME {
            return Err(invalid(format!(
                "the webhook policy name is longer than {MAX_NAME} characters"
            )));
        }
        if input.event_types.is_empty() {
            return Err(invalid("empty event type"));
        }
        let mut event_types = Vec::with_capacity(input.event_types.len());
        for t in &input.event_types {
            let parsed = EventType::parse(t)
                .ok_or_else(|| invalid(format!("unsupported event type {t}")))?;
            if !event_types.contains(&parsed) {
                event_types.push(parsed);
            }
        }
        if input.targets.is_empty() {
            return Err(invalid(format!(
                "empty notification target with policy {name}"
            )));
        }
        if input.targets.len() > MAX_TARGETS {
            return Err(invalid(format!(
                "a webhook policy has at most {MAX_TARGETS} targets"
            )));
        }
        let targets = input
            .targets
            .iter()
            .map(|t| t.parse(name))
            .collect::<Result<Vec<_>>>()?;
        Ok(PolicySpec {
            name: name.to_owned(),
            description: input.description.clone(),
            targets,
            event_types,
            enabled: input.enabled,
        })
    }
}

/// A stored policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    pub description: String,
    pub targets: Vec<Target>,
    pub event_types: Vec<EventType>,
    /// Who created it (a username or robot name).
    pub creator: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Policy {
    /// Whether the policy sends events of `event_type`.
    pub fn subscribes(&self, event_type: EventType) -> bool {
        self.enabled && self.event_types.contains(&event_type)
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    project_id: i64,
    name: String,
    description: String,
    targets: Json<Vec<Target>>,
    event_types: Vec<String>,
    creator: String,
    enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Policy {
    fn from(r: Row) -> Policy {
        Policy {
            id: r.id,
            project_id: r.project_id,
            name: r.name,
            description: r.description,
            targets: r.targets.0,
            // Unknown names cannot be stored through the API; a row edited
            // by hand to hold one just does not match that name.
            event_types: r
                .event_types
                .iter()
                .filter_map(|t| EventType::parse(t))
                .collect(),
            creator: r.creator,
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const COLUMNS: &str = "id, project_id, name, description, targets, event_types, creator, enabled, \
                       created_at, updated_at";

fn names(types: &[EventType]) -> Vec<&'static str> {
    types.iter().map(|t| t.as_str()).collect()
}

fn name_taken(name: &str) -> Error {
    Error::Conflict(format!(
        "a webhook policy named {name} already exists in this project"
    ))
}

/// Store a new policy of `project_id`, created by `creator`.
pub async fn create_policy(
    conn: &mut PgConnection,
    project_id: i64,
    creator: &str,
    spec: &PolicySpec,
) -> Result<Policy> {
    let row = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhook_policies
             (project_id, name, description, targets, event_types, creator, enabled)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING {COLUMNS}"
    )))
    .bind(project_id)
    .bind(&spec.name)
    .bind(&spec.description)
    .bind(Json(&spec.targets))
    .bind(names(&spec.event_types))
    .bind(creator)
    .bind(spec.enabled)
    .fetch_one(conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "webhook_policies_name") {
            name_taken(&spec.name)
        } else {
            e.into()
        }
    })?;
    Ok(row.into())
}

/// The policy `id` of `project_id` ([`Error::NotFound`] when it belongs to
/// another project or does not exist).
pub async fn get_policy(db: impl PgExecutor<'_>, project_id: i64, id: i64) -> Result<Policy> {
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhook_policies WHERE id = $1 AND project_id = $2"
    )))
    .bind(id)
    .bind(project_id)
    .fetch_optional(db)
    .await?
    .map(Policy::from)
    .ok_or(Error::NotFound)
}

/// Replace everything of a policy but its creator and creation time.
pub async fn update_policy(
    conn: &mut PgConnection,
    project_id: i64,
    id: i64,
    spec: &PolicySpec,
) -> Result<Policy> {
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "UPDATE webhook_policies
            SET name = $3, description = $4, targets = $5, event_types = $6, enabled = $7,
                updated_at = now()
          WHERE id = $1 AND project_id = $2
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(project_id)
    .bind(&spec.name)
    .bind(&spec.description)
    .bind(Json(&spec.targets))
    .bind(names(&spec.event_types))
    .bind(spec.enabled)
    .fetch_optional(conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "webhook_policies_name") {
            name_taken(&spec.name)
        } else {
            Error::from(e)
        }
    })?
    .map(Policy::from)
    .ok_or(Error::NotFound)
}

/// Delete a policy with its delivery log; returns what was deleted. Jobs
/// still queued for it find nothing to send and end.
pub async fn delete_policy(conn: &mut PgConnection, project_id: i64, id: i64) -> Result<Policy> {
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "DELETE FROM webhook_policies WHERE id = $1 AND project_id = $2 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(project_id)
    .fetch_optional(conn)
    .await?
    .map(Policy::from)
    .ok_or(Error::NotFound)
}

/// A column policies can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySort {
    Id,
    Name,
    CreationTime,
    UpdateTime,
}

impl PolicySort {
    fn column(self) -> &'static str {
        match self {
            PolicySort::Id => "id",
            PolicySort::Name => "name",
            PolicySort::CreationTime => "created_at",
            PolicySort::UpdateTime => "updated_at",
        }
    }
}

/// Filter, order and page for [`list_policies`].
#[derive(Debug, Clone, Default)]
pub struct PolicyQuery {
    pub project_id: i64,
    /// Only the policy with exactly this name.
    pub name: Option<String>,
    /// Only policies whose name contains this text.
    pub name_contains: Option<String>,
    /// Only enabled (`true`) or disabled (`false`) policies.
    pub enabled: Option<bool>,
    /// Sort keys with `true` for descending; none means newest first
    /// (Harbor's default), ties broken by id.
    pub sort: Vec<(PolicySort, bool)>,
    pub page: Page,
}

/// One page of a project's policies and how many match in all.
pub async fn list_policies(
    conn: &mut PgConnection,
    query: &PolicyQuery,
) -> Result<Listing<Policy>> {
    let like = query
        .name_contains
        .as_deref()
        .map(|s| format!("%{}%", crate::users::escape_like(s)));
    let filter = "project_id = $1
          AND ($2::text IS NULL OR name = $2)
          AND ($3::text IS NULL OR name LIKE $3)
          AND ($4::bool IS NULL OR enabled = $4)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM webhook_policies WHERE {filter}"
    )))
    .bind(query.project_id)
    .bind(&query.name)
    .bind(&like)
    .bind(query.enabled)
    .fetch_one(&mut *conn)
    .await?;
    let mut order: Vec<String> = query
        .sort
        .iter()
        .map(|(key, desc)| format!("{} {}", key.column(), if *desc { "DESC" } else { "ASC" }))
        .collect();
    if order.is_empty() {
        order.push("created_at DESC".into());
    }
    order.push("id DESC".into());
    let (limit, offset) = query.page.limit_offset();
    let rows = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhook_policies WHERE {filter}
         ORDER BY {} LIMIT $5 OFFSET $6",
        order.join(", ")
    )))
    .bind(query.project_id)
    .bind(&query.name)
    .bind(&like)
    .bind(query.enabled)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Listing {
        items: rows.into_iter().map(Policy::from).collect(),
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(address: &str) -> TargetInput {
        TargetInput {
            notify_type: "http".into(),
            address: address.into(),
            ..TargetInput::default()
        }
    }

    fn input(targets: Vec<TargetInput>, events: &[&str]) -> PolicyInput {
        PolicyInput {
            name: "ci".into(),
            description: String::new(),
            targets,
            event_types: events.iter().map(|s| (*s).to_owned()).collect(),
            enabled: true,
        }
    }

    fn refusal(input: &PolicyInput) -> String {
        match PolicySpec::parse(input) {
            Err(Error::Invalid(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn an_http_target_defaults_to_harbors_payload() {
        let spec = PolicySpec::parse(&input(
            vec![http(" https://ci.example/hook ")],
            &["PUSH_ARTIFACT"],
        ))
        .unwrap();
        assert_eq!(spec.targets[0].address, "https://ci.example/hook");
        assert_eq!(spec.targets[0].payload_format, PayloadFormat::Default);
        assert_eq!(spec.event_types, [EventType::PushArtifact]);
    }

    #[test]
    fn every_harbor_event_type_is_accepted_once() {
        let all: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        let mut doubled = all.clone();
        doubled.extend(&all);
        let spec = PolicySpec::parse(&input(vec![http("http://h/")], &doubled)).unwrap();
        assert_eq!(spec.event_types, EventType::ALL);
    }

    #[test]
    fn bad_policies_are_refused_with_the_reason() {
        assert_eq!(
            refusal(&input(vec![http("http://h/")], &[])),
            "empty event type"
        );
        assert_eq!(
            refusal(&input(vec![http("http://h/")], &["PUSH_IMAGE"])),
            "unsupported event type PUSH_IMAGE"
        );
        assert_eq!(
            refusal(&input(vec![], &["PUSH_ARTIFACT"])),
            "empty notification target with policy ci"
        );
        assert!(refusal(&input(vec![http("ftp://h/x")], &["PUSH_ARTIFACT"])).contains("http://"));
        assert!(refusal(&input(vec![http("not a url")], &["PUSH_ARTIFACT"])).contains("invalid"));
        let with_password = refusal(&input(
            vec![http("https://bob:secret@h.example/x")],
            &["PUSH_ARTIFACT"],
        ));
        assert!(with_password.contains("auth_header"), "{with_password}");
        assert!(!with_password.contains("secret"), "{with_password}");
        let mut teams = http("http://h/");
        teams.notify_type = "teams".into();
        assert!(
            refusal(&input(vec![teams], &["PUSH_ARTIFACT"])).contains("unsupported target type")
        );
        let mut slack = http("https://hooks.slack.example/x");
        slack.notify_type = "slack".into();
        slack.payload_format = Some("CloudEvents".into());
        assert_eq!(
            refusal(&input(vec![slack], &["PUSH_ARTIFACT"])),
            "set payload format is not allowed for slack"
        );
        let mut odd = http("http://h/");
        odd.payload_format = Some("Xml".into());
        assert!(
            refusal(&input(vec![odd], &["PUSH_ARTIFACT"])).contains("unsupported payload format")
        );
        let mut nameless = input(vec![http("http://h/")], &["PUSH_ARTIFACT"]);
        nameless.name = "  ".into();
        assert_eq!(refusal(&nameless), "a webhook policy needs a name");
        let mut header = http("http://h/");
        header.auth_header = "Bearer x\r\nX-Evil: 1".into();
        assert!(refusal(&input(vec![header], &["PUSH_ARTIFACT"])).contains("single line"));
    }
}
