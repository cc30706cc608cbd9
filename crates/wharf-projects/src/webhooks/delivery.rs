//! Sending deliveries, and their log.
//!
//! [`WebhookJob`] is the job (kind [`KIND`]) the outbox queues for each
//! delivery. One attempt: render the payload for the target, POST it, count
//! a 2xx as delivered; anything else (no connection, a timeout, another
//! status) is [`JobFailure::Retry`], which the queue runs again after
//! e^attempt seconds (2.7 s, 7.4 s, 20 s, ...). After
//! [`WebhookConfig::max_attempts`] the delivery is recorded as `Error` and
//! the job ends. Every attempt leaves a `webhook_attempts` row; the
//! delivery row says where it stands.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgExecutor, PgPool};
use wharf_jobs::{JobContext, JobFailure, JobHandler};

use super::event::{Event, EventType};
use super::policy::{NotifyType, PayloadFormat};
use crate::error::{Error, Result};
use crate::{Listing, Page};

/// The job kind of a delivery.
pub const KIND: &str = "webhook";

/// The attempts the queue allows a delivery job; the handler gives up
/// earlier, after [`WebhookConfig::max_attempts`], so that the setting can
/// change without touching jobs already queued.
pub(crate) const QUEUE_ATTEMPTS: u16 = 25;

/// Deliveries finished longer ago than this are removed from the log.
pub const LOG_RETENTION_DAYS: i32 = 30;

/// Most bytes of a refusing receiver's answer kept in the log.
const ANSWER_EXCERPT: usize = 256;

/// `[webhooks]`: how deliveries are sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Seconds a receiver has to answer one attempt (connecting included).
    pub timeout_secs: u64,
    /// Attempts of one delivery before it is recorded as failed (1 to 25).
    /// With the queue's backoff, 10 attempts span about 3.6 hours.
    pub max_attempts: u16,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            timeout_secs: 10,
            max_attempts: 10,
        }
    }
}

impl WebhookConfig {
    /// Check the values serde cannot: a timeout of at least one second, and
    /// 1 to 25 attempts.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.timeout_secs == 0 {
            return Err("`webhooks.timeout_secs` must be at least 1".into());
        }
        if !(1..=QUEUE_ATTEMPTS).contains(&self.max_attempts) {
            return Err(format!(
                "`webhooks.max_attempts` must be 1 to {QUEUE_ATTEMPTS}"
            ));
        }
        Ok(())
    }
}

/// Where a delivery stands (Harbor's execution status names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Queued: not tried yet, or waiting for its next attempt.
    Pending,
    /// An attempt is under way.
    Running,
    /// A receiver answered 2xx.
    Success,
    /// Every attempt failed.
    Error,
    /// Not sent (further): its policy was disabled.
    Stopped,
}

impl DeliveryStatus {
    /// Harbor's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "Pending",
            DeliveryStatus::Running => "Running",
            DeliveryStatus::Success => "Success",
            DeliveryStatus::Error => "Error",
            DeliveryStatus::Stopped => "Stopped",
        }
    }

    /// Parse a status name, case-insensitively.
    pub fn from_name(s: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Running,
            DeliveryStatus::Success,
            DeliveryStatus::Error,
            DeliveryStatus::Stopped,
        ]
        .into_iter()
        .find(|status| status.as_str().eq_ignore_ascii_case(s))
    }

    /// Whether nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Success | DeliveryStatus::Error | DeliveryStatus::Stopped
        )
    }
}

/// One event for one target, as the log shows it (the target's auth
/// header is not part of it).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub policy_id: i64,
    pub event_type: EventType,
    /// Stable across retries (`X-Wharf-Delivery`, the CloudEvents `id`).
    pub event_id: String,
    pub event: Event,
    pub notify_type: NotifyType,
    pub payload_format: PayloadFormat,
    pub address: String,
    pub skip_cert_verify: bool,
    pub status: DeliveryStatus,
    /// Why it stands where it does (the last attempt's error, ...).
    pub status_message: String,
    /// Attempts made so far.
    pub attempts: i32,
    /// The HTTP status of the last answer, if any came.
    pub response_code: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    policy_id: i64,
    event_id: String,
    event: Json<Event>,
    notify_type: String,
    payload_format: String,
    address: String,
    auth_header: String,
    skip_cert_verify: bool,
    status: String,
    status_message: String,
    attempts: i32,
    response_code: Option<i32>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "d.id, d.policy_id, d.event_id::text AS event_id, d.event, d.notify_type, \
    d.payload_format, d.address, d.auth_header, d.skip_cert_verify, d.status, d.status_message, \
    d.attempts, d.response_code, d.created_at, d.updated_at, d.started_at, d.finished_at";

impl Row {
    fn into_delivery(self) -> (Delivery, String) {
        let event = self.event.0;
        (
            Delivery {
                id: self.id,
                policy_id: self.policy_id,
                event_type: event.event_type,
                event_id: self.event_id,
                event,
                notify_type: NotifyType::parse(&self.notify_type).unwrap_or(NotifyType::Http),
                payload_format: PayloadFormat::parse(&self.payload_format).unwrap_or_default(),
                address: self.address,
                skip_cert_verify: self.skip_cert_verify,
                status: DeliveryStatus::from_name(&self.status).unwrap_or(DeliveryStatus::Pending),
                status_message: self.status_message,
                attempts: self.attempts,
                response_code: self.response_code,
                created_at: self.created_at,
                updated_at: self.updated_at,
                started_at: self.started_at,
                finished_at: self.finished_at,
            },
            self.auth_header,
        )
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Attempt {
    pub delivery_id: i64,
    /// 1 for the first.
    pub attempt: i32,
    /// `Running`, `Success` or `Error`.
    pub status: String,
    /// The receiver's HTTP status, when it answered.
    pub response_code: Option<i32>,
    /// Why it failed: no connection, a timeout, the answer's status and the
    /// start of its body.
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Which deliveries [`list_deliveries`] returns.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub policy_id: i64,
    /// Only these statuses (any when empty).
    pub statuses: Vec<DeliveryStatus>,
    /// Only this event type.
    pub event_type: Option<EventType>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
    pub page: Page,
}

/// One page of a policy's deliveries and how many match in all.
pub async fn list_deliveries(pool: &PgPool, query: &DeliveryQuery) -> Result<Listing<Delivery>> {
    let statuses: Vec<&str> = query.statuses.iter().map(|s| s.as_str()).collect();
    let event_type = query.event_type.map(EventType::as_str);
    let filter = "d.policy_id = $1
          AND (cardinality($2::text[]) = 0 OR d.status = ANY($2))
          AND ($3::text IS NULL OR d.event_type = $3)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM webhook_deliveries d WHERE {filter}"
    )))
    .bind(query.policy_id)
    .bind(&statuses)
    .bind(event_type)
    .fetch_one(pool)
    .await?;
    let order = if query.oldest_first { "ASC" } else { "DESC" };
    let (limit, offset) = query.page.limit_offset();
    let rows = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhook_deliveries d WHERE {filter}
         ORDER BY d.id {order} LIMIT $4 OFFSET $5"
    )))
    .bind(query.policy_id)
    .bind(&statuses)
    .bind(event_type)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok(Listing {
        items: rows.into_iter().map(|r| r.into_delivery().0).collect(),
        total,
    })
}

/// The delivery `id` of policy `policy_id`.
pub async fn get_delivery(db: impl PgExecutor<'_>, policy_id: i64, id: i64) -> Result<Delivery> {
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhook_deliveries d WHERE d.id = $1 AND d.policy_id = $2"
    )))
    .bind(id)
    .bind(policy_id)
    .fetch_optional(db)
    .await?
    .map(|r| r.into_delivery().0)
    .ok_or(Error::NotFound)
}

/// The attempts of these deliveries, by delivery, first attempt first.
pub async fn attempts_of(
    db: impl PgExecutor<'_>,
    delivery_ids: &[i64],
) -> Result<BTreeMap<i64, Vec<Attempt>>> {
    let rows: Vec<Attempt> = sqlx::query_as(
        "SELECT delivery_id, attempt, status, response_code, error, started_at, finished_at
           FROM webhook_attempts WHERE delivery_id = ANY($1)
          ORDER BY delivery_id, attempt",
    )
    .bind(delivery_ids)
    .fetch_all(db)
    .await?;
    let mut out: BTreeMap<i64, Vec<Attempt>> = BTreeMap::new();
    for a in rows {
        out.entry(a.delivery_id).or_default().push(a);
    }
    Ok(out)
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A delivery's log as text, one line per attempt, like Harbor's task logs.
pub async fn delivery_log(pool: &PgPool, policy_id: i64, id: i64) -> Result<String> {
    let delivery = get_delivery(pool, policy_id, id).await?;
    let attempts = attempts_of(pool, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    let mut log = format!(
        "{} [INFO] {} queued for {} ({}, {})\n",
        stamp(delivery.created_at),
        delivery.event_type,
        delivery.address,
        delivery.notify_type.as_str(),
        delivery.payload_format.as_str()
    );
    for a in &attempts {
        let what = match (&a.status[..], a.response_code, &a.error) {
            ("Success", Some(code), _) => format!("delivered: HTTP {code}"),
            ("Running", ..) => "sending".to_owned(),
            (_, _, Some(error)) => format!("failed: {error}"),
            (status, ..) => status.to_owned(),
        };
        let level = if a.status == "Error" { "ERROR" } else { "INFO" };
        log.push_str(&format!(
            "{} [{level}] attempt {}: {what}\n",
            stamp(a.finished_at.unwrap_or(a.started_at)),
            a.attempt
        ));
    }
    if delivery.status.is_final() {
        log.push_str(&format!(
            "{} [INFO] {}{}\n",
            stamp(delivery.finished_at.unwrap_or(delivery.updated_at)),
            delivery.status.as_str(),
            if delivery.status_message.is_empty() {
                String::new()
            } else {
                format!(": {}", delivery.status_message)
            }
        ));
    }
    Ok(log)
}

/// When a policy last sent (queued) an event of a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastTrigger {
    pub policy_id: i64,
    pub policy_name: String,
    pub event_type: EventType,
    pub enabled: bool,
    pub creation_time: DateTime<Utc>,
    /// `None` when it never did.
    pub last_trigger_time: Option<DateTime<Utc>>,
}

/// For each policy of the project and each of its event types, the last
/// time an event of that type was queued for it (Harbor's `lasttrigger`).
pub async fn last_triggers(pool: &PgPool, project_id: i64) -> Result<Vec<LastTrigger>> {
    #[derive(sqlx::FromRow)]
    struct TriggerRow {
        id: i64,
        name: String,
        event_type: String,
        enabled: bool,
        created_at: DateTime<Utc>,
        last: Option<DateTime<Utc>>,
    }
    let rows: Vec<TriggerRow> = sqlx::query_as(
        "SELECT wp.id, wp.name, t.event_type, wp.enabled, wp.created_at,
                (SELECT max(d.created_at) FROM webhook_deliveries d
                  WHERE d.policy_id = wp.id AND d.event_type = t.event_type) AS last
           FROM webhook_policies wp, unnest(wp.event_types) WITH ORDINALITY AS t(event_type, n)
          WHERE wp.project_id = $1
          ORDER BY wp.created_at DESC, wp.id DESC, t.n",
    )
    .bind(project_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(LastTrigger {
                policy_id: r.id,
                policy_name: r.name,
                event_type: EventType::parse(&r.event_type)?,
                enabled: r.enabled,
                creation_time: r.created_at,
                last_trigger_time: r.last,
            })
        })
        .collect())
}

// ---------------------------------------------------------------------------
// The job.

/// The delivery job. The gateway registers it with the configured
/// [`WebhookConfig`] and the host clients reach the registry at (for
/// `resource_url`).
#[derive(Debug, Clone)]
pub struct WebhookJob {
    config: WebhookConfig,
    registry_host: Option<String>,
    /// Verifies certificates against the system's roots.
    verified: reqwest::Client,
    /// For targets with `skip_cert_verify`.
    unverified: reqwest::Client,
}

impl WebhookJob {
    /// A job sending with `config`, naming `registry_host` (`host[:port]`)
    /// in payloads. Fails only when no TLS client can be built.
    pub fn new(
        config: WebhookConfig,
        registry_host: Option<String>,
    ) -> std::result::Result<WebhookJob, reqwest::Error> {
        let timeout = Duration::from_secs(config.timeout_secs.max(1));
        let client = |skip_verify: bool| {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(5)))
                // A receiver answers; it does not send the payload elsewhere.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("Wharf-Webhook/", env!("CARGO_PKG_VERSION")))
                .tls_danger_accept_invalid_certs(skip_verify)
                .build()
        };
        Ok(WebhookJob {
            verified: client(false)?,
            unverified: client(true)?,
            config,
            registry_host: registry_host.filter(|h| !h.is_empty()),
        })
    }

    /// What one attempt sends: headers and body.
    fn request(&self, delivery: &Delivery, auth_header: &str) -> reqwest::RequestBuilder {
        let host = self.registry_host.as_deref();
        let event = &delivery.event;
        let (body, content_type) = match (delivery.notify_type, delivery.payload_format) {
            (NotifyType::Slack, _) => (event.slack_message(host), "application/json"),
            (NotifyType::Http, PayloadFormat::Default) => {
                (event.harbor_payload(host), "application/json")
            }
            (NotifyType::Http, PayloadFormat::CloudEvents) => (
                event.cloud_event(&delivery.event_id, delivery.policy_id, host),
                "application/cloudevents+json",
            ),
        };
        let client = if delivery.skip_cert_verify {
            &self.unverified
        } else {
            &self.verified
        };
        let mut rb = client
            .post(&delivery.address)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header("X-Wharf-Delivery", &delivery.event_id)
            .body(serde_json::to_vec(&body).unwrap_or_default());
        // Slack needs none, and would only be handed a credential.
        if delivery.notify_type == NotifyType::Http && !auth_header.is_empty() {
            rb = rb.header(reqwest::header::AUTHORIZATION, auth_header);
        }
        rb
    }

    /// POST once: the status of a 2xx answer, or the status (if any) and
    /// why it is not a delivery.
    async fn attempt(&self, delivery: &Delivery, auth_header: &str) -> Answer {
        let resp = match self.request(delivery, auth_header).send().await {
            Ok(resp) => resp,
            Err(e) => {
                return Answer {
                    code: None,
                    error: Some(describe_error(&e)),
                };
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Answer {
                code: Some(status.as_u16()),
                error: None,
            };
        }
        let excerpt = excerpt(resp).await;
        let mut error = format!("HTTP {status}");
        if !excerpt.is_empty() {
            error.push_str(&format!(": {excerpt}"));
        }
        Answer {
            code: Some(status.as_u16()),
            error: Some(error),
        }
    }
}

/// What a receiver did with one attempt.
struct Answer {
    code: Option<u16>,
    /// `None` when delivered.
    error: Option<String>,
}

/// The error and its causes, without the URL (its query may hold a token,
/// and the message reaches the logs).
fn describe_error(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    let mut seen = Vec::new();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !seen.contains(&line) {
            text.push_str(&format!(": {line}"));
            seen.push(line);
        }
        source = cause.source();
    }
    text
}

/// The start of an answer's body, on one line.
async fn excerpt(mut resp: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < ANSWER_EXCERPT {
        match resp.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(ANSWER_EXCERPT);
    String::from_utf8_lossy(&bytes)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `host[:port]` of an address, for messages that reach the logs.
fn host_of(address: &str) -> String {
    url::Url::parse(address)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        })
        .unwrap_or_else(|| "the receiver".to_owned())
}

async fn load(pool: &PgPool, id: i64) -> sqlx::Result<Option<(Delivery, String, bool)>> {
    #[derive(sqlx::FromRow)]
    struct WithPolicy {
        #[sqlx(flatten)]
        row: Row,
        enabled: bool,
    }
    let found: Option<WithPolicy> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, wp.enabled FROM webhook_deliveries d
           JOIN webhook_policies wp ON wp.id = d.policy_id
          WHERE d.id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(found.map(|f| {
        let (delivery, auth) = f.row.into_delivery();
        (delivery, auth, f.enabled)
    }))
}

async fn begin_attempt(pool: &PgPool, id: i64, attempt: i32) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, status) VALUES ($1, $2, 'Running')
         ON CONFLICT (delivery_id, attempt) DO UPDATE
            SET status = 'Running', response_code = NULL, error = NULL,
                started_at = now(), finished_at = NULL",
    )
    .bind(id)
    .bind(attempt)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE webhook_deliveries
            SET status = 'Running', attempts = GREATEST(attempts, $2),
                started_at = coalesce(started_at, now()), updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(attempt)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

async fn end_attempt(
    pool: &PgPool,
    id: i64,
    attempt: i32,
    answer: &Answer,
    status: DeliveryStatus,
    message: &str,
) -> sqlx::Result<()> {
    let code = answer.code.map(i32::from);
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE webhook_attempts SET status = $3, response_code = $4, error = $5, finished_at = now()
          WHERE delivery_id = $1 AND attempt = $2",
    )
    .bind(id)
    .bind(attempt)
    .bind(if answer.error.is_none() {
        "Success"
    } else {
        "Error"
    })
    .bind(code)
    .bind(&answer.error)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE webhook_deliveries
            SET status = $2, status_message = $3, response_code = coalesce($4, response_code),
                updated_at = now(),
                finished_at = CASE WHEN $2 IN ('Success', 'Error', 'Stopped') THEN now() END
          WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(message)
    .bind(code)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

async fn stop(pool: &PgPool, id: i64, message: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhook_deliveries
            SET status = 'Stopped', status_message = $2, updated_at = now(), finished_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(message)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forget the policy's deliveries finished more than
/// [`LOG_RETENTION_DAYS`] ago, a bounded batch at a time.
async fn prune(pool: &PgPool, policy_id: i64) {
    let pruned = sqlx::query(
        "DELETE FROM webhook_deliveries WHERE id IN (
            SELECT id FROM webhook_deliveries
             WHERE policy_id = $1 AND finished_at < now() - make_interval(days => $2)
             ORDER BY id LIMIT 500)",
    )
    .bind(policy_id)
    .bind(LOG_RETENTION_DAYS)
    .execute(pool)
    .await;
    if let Err(e) = pruned {
        tracing::warn!(policy_id, error = %e, "could not prune the webhook delivery log");
    }
}

#[async_trait::async_trait]
impl JobHandler for WebhookJob {
    async fn run(&self, ctx: JobContext, payload: Value) -> std::result::Result<(), JobFailure> {
        let id = payload
            .get("delivery_id")
            .and_then(Value::as_i64)
            .ok_or_else(|| JobFailure::Fatal("a webhook job names no delivery".into()))?;
        let Some((delivery, auth_header, enabled)) = load(&ctx.pool, id).await? else {
            // Its policy was deleted, and the log with it.
            return Ok(());
        };
        if delivery.status.is_final() {
            return Ok(());
        }
        if !enabled {
            stop(&ctx.pool, id, "the policy was disabled before it was sent").await?;
            return Ok(());
        }
        let attempt = i32::try_from(ctx.attempt).unwrap_or(i32::MAX);
        let last = ctx.attempt >= u32::from(self.config.max_attempts).min(ctx.max_attempts);
        begin_attempt(&ctx.pool, id, attempt).await?;
        let answer = self.attempt(&delivery, &auth_header).await;
        let target = host_of(&delivery.address);
        match &answer.error {
            None => {
                end_attempt(&ctx.pool, id, attempt, &answer, DeliveryStatus::Success, "").await?;
                prune(&ctx.pool, delivery.policy_id).await;
                Ok(())
            }
            Some(error) if last => {
                let message =
                    format!("gave up after {attempt} attempts; the last one failed: {error}");
                end_attempt(
                    &ctx.pool,
                    id,
                    attempt,
                    &answer,
                    DeliveryStatus::Error,
                    &message,
                )
                .await?;
                prune(&ctx.pool, delivery.policy_id).await;
                // Done with: the queue keeps no job that will never run again.
                Err(JobFailure::Fatal(format!(
                    "{} to {target}: {message}",
                    delivery.event_type
                )))
            }
            Some(error) => {
                let message = format!("attempt {attempt} failed: {error}; will retry");
                end_attempt(
                    &ctx.pool,
                    id,
                    attempt,
                    &answer,
                    DeliveryStatus::Pending,
                    &message,
                )
                .await?;
                Err(JobFailure::Retry(format!(
                    "{} to {target}: {error}",
                    delivery.event_type
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_in_any_case() {
        assert_eq!(
            DeliveryStatus::from_name("success"),
            Some(DeliveryStatus::Success)
        );
        assert_eq!(
            DeliveryStatus::from_name("Error"),
            Some(DeliveryStatus::Error)
        );
        assert_eq!(DeliveryStatus::from_name("finished"), None);
    }

    #[test]
    fn the_config_refuses_what_cannot_work() {
        assert!(WebhookConfig::default().validate().is_ok());
        let zero = WebhookConfig {
            timeout_secs: 0,
            ..WebhookConfig::default()
        };
        assert!(zero.validate().is_err());
        let many = WebhookConfig {
            max_attempts: 26,
            ..WebhookConfig::default()
        };
        assert!(many.validate().unwrap_err().contains("1 to 25"));
    }

    #[test]
    fn log_messages_name_the_host_only() {
        assert_eq!(
            host_of("https://ci.example:8443/hook?token=secret"),
            "ci.example:8443"
        );
        assert_eq!(host_of("not a url"), "the receiver");
    }
}
