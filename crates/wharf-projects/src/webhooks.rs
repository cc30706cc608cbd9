//! Webhooks: project policies that send what happens in the project (a push,
//! a pull, a delete, a quota refusal, a retention run) to HTTP endpoints or
//! Slack, in Harbor's payload shapes (its JSON payload, CloudEvents 1.0, or a
//! Slack message).
//!
//! # Delivery: an outbox on the job queue
//!
//! An event never waits on a receiver. Where it happens, one delivery row per
//! matching target of every enabled policy is written together with the
//! `wharf_jobs` job that sends it ([`outbox`]):
//!
//! - pushes and deletes in the registry's own transaction (through
//!   [`crate::audit::RegistryAudit`]), so a push that rolls back sends
//!   nothing and one that commits is never lost;
//! - a quota warning in the transaction of the push that crosses the
//!   threshold; a quota refusal on its own connection right after (the
//!   refused push rolls back);
//! - pulls from the batched pull writer, which is already off the pull's
//!   path (best effort, like the pull audit entries);
//! - a retention run in the transaction that records its end.
//!
//! The job ([`delivery::WebhookJob`]) renders the payload for its target,
//! POSTs it with the target's `Authorization` header and a timeout, and
//! counts any 2xx as delivered. Anything else is retried by the queue with
//! exponential backoff until the configured number of attempts; every attempt
//! is recorded (status, response code, error, times) and shown by the
//! `/webhook/jobs` and `/webhook/policies/{id}/executions` APIs. Delivery is
//! at least once: a receiver may see an event twice (say, when its answer
//! was lost), and can tell by the stable `X-Wharf-Delivery` header (the
//! CloudEvents `id`).

pub mod delivery;
pub mod event;
pub mod outbox;
pub mod policy;

pub use delivery::{
    Attempt, Delivery, DeliveryQuery, DeliveryStatus, KIND, LastTrigger, WebhookConfig, WebhookJob,
    attempts_of, delivery_log, get_delivery, last_triggers, list_deliveries,
};
pub use event::{Event, EventType, Repository, Resource};
pub use policy::{
    NotifyType, PayloadFormat, Policy, PolicyInput, PolicyQuery, PolicySort, PolicySpec, Target,
    TargetInput, create_policy, delete_policy, get_policy, list_policies, update_policy,
};

/// `host[:port]` of a URL (Wharf's `external_url`), the host webhook
/// payloads name in `resource_url`; `None` when it has none.
pub fn registry_host_of(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}
