//! What a webhook reports, and the three shapes it is sent in.
//!
//! An [`Event`] holds the facts as they were when it happened (stored with
//! each delivery); the payload a target receives is rendered from it when it
//! is sent: Harbor's JSON payload ([`Event::harbor_payload`]), a CloudEvents
//! 1.0 event ([`Event::cloud_event`]) or a Slack message
//! ([`Event::slack_message`]). Only the registry host in `resource_url` comes
//! from the sender's settings.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The event types a policy can subscribe to (Harbor's, in its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// A manifest was pushed (one event per tag it was pushed with).
    PushArtifact,
    /// A manifest was pulled (`GET`, not `HEAD`).
    PullArtifact,
    /// An artifact was deleted (through `/v2`, the API, retention or GC).
    DeleteArtifact,
    /// A push was refused because it would take the project over its quota.
    QuotaExceed,
    /// A push took the project's usage past [`QUOTA_WARNING_PERCENT`].
    QuotaWarning,
    /// Accepted for Harbor compatibility; Wharf does not scan yet.
    ScanningFailed,
    /// Accepted for Harbor compatibility; Wharf does not scan yet.
    ScanningStopped,
    /// Accepted for Harbor compatibility; Wharf does not scan yet.
    ScanningCompleted,
    /// Accepted for Harbor compatibility; sent once replication exists.
    Replication,
    /// A (non-dry) tag retention run finished.
    TagRetention,
}

/// Usage, in percent of the hard limit, past which a push sends
/// [`EventType::QuotaWarning`] (Harbor's threshold).
pub const QUOTA_WARNING_PERCENT: i64 = 85;

impl EventType {
    /// Every type, in Harbor's order (what `/webhook/events` lists).
    pub const ALL: [EventType; 10] = [
        EventType::PushArtifact,
        EventType::PullArtifact,
        EventType::DeleteArtifact,
        EventType::QuotaExceed,
        EventType::QuotaWarning,
        EventType::ScanningFailed,
        EventType::ScanningStopped,
        EventType::ScanningCompleted,
        EventType::Replication,
        EventType::TagRetention,
    ];

    /// Harbor's name: `PUSH_ARTIFACT`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PushArtifact => "PUSH_ARTIFACT",
            EventType::PullArtifact => "PULL_ARTIFACT",
            EventType::DeleteArtifact => "DELETE_ARTIFACT",
            EventType::QuotaExceed => "QUOTA_EXCEED",
            EventType::QuotaWarning => "QUOTA_WARNING",
            EventType::ScanningFailed => "SCANNING_FAILED",
            EventType::ScanningStopped => "SCANNING_STOPPED",
            EventType::ScanningCompleted => "SCANNING_COMPLETED",
            EventType::Replication => "REPLICATION",
            EventType::TagRetention => "TAG_RETENTION",
        }
    }

    /// Parse Harbor's name (exactly, as Harbor compares).
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The CloudEvents `type` Harbor gives it (`harbor.artifact.pushed`, ...).
    pub fn cloud_event_type(self) -> &'static str {
        match self {
            EventType::PushArtifact => "harbor.artifact.pushed",
            EventType::PullArtifact => "harbor.artifact.pulled",
            EventType::DeleteArtifact => "harbor.artifact.deleted",
            EventType::QuotaExceed => "harbor.quota.exceeded",
            EventType::QuotaWarning => "harbor.quota.warned",
            EventType::ScanningFailed => "harbor.scan.failed",
            EventType::ScanningStopped => "harbor.scan.stopped",
            EventType::ScanningCompleted => "harbor.scan.completed",
            EventType::Replication => "harbor.replication.status.changed",
            EventType::TagRetention => "harbor.tag_retention.finished",
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Harbor's `repository` object of a payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    /// When the repository was created (Unix seconds), if it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_created: Option<i64>,
    /// The name inside the project: `app` of `library/app`.
    pub name: String,
    /// The project name.
    pub namespace: String,
    /// `library/app`.
    pub repo_full_name: String,
    /// `public` or `private`, as the project is.
    pub repo_type: String,
}

impl Repository {
    /// The repository `full_name` of a project that is public or not.
    pub fn new(full_name: &str, public: bool, created: Option<DateTime<Utc>>) -> Repository {
        let (namespace, name) = full_name.split_once('/').unwrap_or((full_name, full_name));
        Repository {
            date_created: created.map(|t| t.timestamp()),
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            repo_full_name: full_name.to_owned(),
            repo_type: if public { "public" } else { "private" }.to_owned(),
        }
    }
}

/// One artifact an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// `sha256:...` (empty when unknown).
    #[serde(default)]
    pub digest: String,
    /// The tag, or the digest for an artifact without one (as Harbor).
    pub tag: String,
}

/// What happened, as stored with each delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Unix seconds.
    pub occur_at: i64,
    /// Who did it: a username, a robot's name, `anonymous`, or the job that
    /// acted (empty for quota events, as in Harbor).
    pub operator: String,
    /// The project it happened in (the CloudEvents `source` names it).
    pub project_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<Repository>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    /// Harbor's `retention` object, for [`EventType::TagRetention`]
    /// (without `harbor_hostname`, added when sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Value>,
    /// `{"Details": message}` for quota events.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_attributes: BTreeMap<String, String>,
}

/// `registry.example:5000/library/app:v1`, or `...@sha256:...` when the
/// reference is a digest; without a host when none is known.
fn resource_url(host: Option<&str>, repository: &str, reference: &str) -> String {
    let separator = if reference.contains(':') { '@' } else { ':' };
    match host.filter(|h| !h.is_empty()) {
        Some(host) => format!("{host}/{repository}{separator}{reference}"),
        None => format!("{repository}{separator}{reference}"),
    }
}

impl Event {
    /// The event's time as a timestamp.
    pub fn time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.occur_at, 0).unwrap_or_default()
    }

    /// Harbor's `event_data` object. `host` is the registry's `host[:port]`
    /// for `resource_url` and the retention's `harbor_hostname`.
    pub fn event_data(&self, host: Option<&str>) -> Value {
        let mut data = serde_json::Map::new();
        if !self.resources.is_empty() {
            let repository = self
                .repository
                .as_ref()
                .map(|r| r.repo_full_name.as_str())
                .unwrap_or_default();
            let resources: Vec<Value> = self
                .resources
                .iter()
                .map(|r| {
                    let mut item = serde_json::Map::new();
                    if !r.digest.is_empty() {
                        item.insert("digest".into(), r.digest.clone().into());
                    }
                    item.insert("tag".into(), r.tag.clone().into());
                    if !repository.is_empty() && !r.tag.is_empty() {
                        item.insert(
                            "resource_url".into(),
                            resource_url(host, repository, &r.tag).into(),
                        );
                    }
                    Value::Object(item)
                })
                .collect();
            data.insert("resources".into(), resources.into());
        }
        if let Some(repository) = &self.repository {
            data.insert(
                "repository".into(),
                serde_json::to_value(repository).unwrap_or_default(),
            );
        }
        if let Some(retention) = &self.retention {
            let mut retention = retention.clone();
            if let (Some(map), Some(host)) = (retention.as_object_mut(), host) {
                // Harbor's hostname is the external URL's host, without port.
                let hostname = host.rsplit_once(':').map_or(host, |(h, _)| h);
                map.insert("harbor_hostname".into(), hostname.into());
            }
            data.insert("retention".into(), retention);
        }
        if !self.custom_attributes.is_empty() {
            data.insert(
                "custom_attributes".into(),
                serde_json::to_value(&self.custom_attributes).unwrap_or_default(),
            );
        }
        Value::Object(data)
    }

    /// Harbor's JSON payload (`Content-Type: application/json`).
    pub fn harbor_payload(&self, host: Option<&str>) -> Value {
        json!({
            "type": self.event_type.as_str(),
            "occur_at": self.occur_at,
            "operator": self.operator,
            "event_data": self.event_data(host),
        })
    }

    /// A CloudEvents 1.0 event in structured mode
    /// (`Content-Type: application/cloudevents+json`), as Harbor builds it:
    /// `source` is `/projects/<id>/webhook/policies/<policy>`, `data` the
    /// `event_data`, `operator` an extension. `id` should stay the same
    /// across retries of one delivery.
    pub fn cloud_event(&self, id: &str, policy_id: i64, host: Option<&str>) -> Value {
        json!({
            "specversion": "1.0",
            "id": id,
            "source": format!("/projects/{}/webhook/policies/{policy_id}", self.project_id),
            "type": self.event_type.cloud_event_type(),
            "datacontenttype": "application/json",
            "time": self.time().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "operator": self.operator,
            "data": self.event_data(host),
        })
    }

    /// One line for people: what happened to what, by whom.
    pub fn summary(&self, host: Option<&str>) -> String {
        let mut text = self.event_type.as_str().to_owned();
        if let Some(repository) = &self.repository {
            let refs: Vec<String> = self
                .resources
                .iter()
                .map(|r| resource_url(host, &repository.repo_full_name, &r.tag))
                .collect();
            if refs.is_empty() {
                text.push_str(&format!(" {}", repository.repo_full_name));
            } else {
                text.push_str(&format!(" {}", refs.join(", ")));
            }
        }
        if let Some(retention) = &self.retention {
            text.push_str(&format!(
                " in project {}: {} artifacts, {} retained",
                retention["project_name"].as_str().unwrap_or_default(),
                retention["total"],
                retention["retained"]
            ));
        }
        if !self.operator.is_empty() {
            text.push_str(&format!(" by {}", self.operator));
        }
        if let Some(details) = self.custom_attributes.get("Details") {
            text.push_str(&format!(": {details}"));
        }
        text
    }

    /// A Slack message: `text` for notifications and clients without
    /// blocks, and Harbor's blocks (event type, time, operator, the event
    /// data as JSON).
    pub fn slack_message(&self, host: Option<&str>) -> Value {
        let section =
            |text: String| json!({"type": "section", "text": {"type": "mrkdwn", "text": text}});
        let data = serde_json::to_string_pretty(&self.event_data(host)).unwrap_or_default();
        json!({
            "text": self.summary(host),
            "blocks": [
                section("*Harbor webhook events*".into()),
                section(format!("*event_type:* {}", self.event_type)),
                section(format!(
                    "*occur_at:* <!date^{}^{{date}} at {{time}}|{}>",
                    self.occur_at,
                    self.time().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )),
                section(format!("*operator:* {}", self.operator)),
                section("*event_data:*".into()),
                section(format!("```{data}```")),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushed() -> Event {
        Event {
            event_type: EventType::PushArtifact,
            occur_at: 1_678_082_303,
            operator: "admin".into(),
            project_id: 1,
            repository: Some(Repository::new(
                "library/busybox",
                true,
                DateTime::from_timestamp(1_677_053_165, 0),
            )),
            resources: vec![Resource {
                digest: "sha256:dde8".into(),
                tag: "v1".into(),
            }],
            retention: None,
            custom_attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn the_default_payload_is_harbors() {
        assert_eq!(
            pushed().harbor_payload(Some("harbor.dev")),
            json!({
                "type": "PUSH_ARTIFACT",
                "occur_at": 1_678_082_303,
                "operator": "admin",
                "event_data": {
                    "resources": [{
                        "digest": "sha256:dde8",
                        "tag": "v1",
                        "resource_url": "harbor.dev/library/busybox:v1",
                    }],
                    "repository": {
                        "date_created": 1_677_053_165,
                        "name": "busybox",
                        "namespace": "library",
                        "repo_full_name": "library/busybox",
                        "repo_type": "public",
                    },
                },
            })
        );
    }

    #[test]
    fn an_untagged_artifact_is_named_by_digest() {
        let mut event = pushed();
        event.resources[0].tag = "sha256:dde8".into();
        let data = event.event_data(Some("r:5000"));
        assert_eq!(
            data["resources"][0]["resource_url"],
            "r:5000/library/busybox@sha256:dde8"
        );
    }

    #[test]
    fn cloud_events_carry_the_data_and_harbors_type() {
        let ce = pushed().cloud_event("id-1", 7, Some("harbor.dev"));
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["id"], "id-1");
        assert_eq!(ce["source"], "/projects/1/webhook/policies/7");
        assert_eq!(ce["type"], "harbor.artifact.pushed");
        assert_eq!(ce["datacontenttype"], "application/json");
        assert_eq!(ce["time"], "2023-03-06T05:58:23Z");
        assert_eq!(ce["data"], pushed().event_data(Some("harbor.dev")));
    }

    #[test]
    fn every_type_round_trips_and_has_a_cloud_event_type() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
            assert!(t.cloud_event_type().starts_with("harbor."));
        }
    }

    #[test]
    fn slack_gets_a_readable_line_and_the_data() {
        let message = pushed().slack_message(Some("harbor.dev"));
        assert_eq!(
            message["text"],
            "PUSH_ARTIFACT harbor.dev/library/busybox:v1 by admin"
        );
        let blocks = message["blocks"].as_array().unwrap();
        assert!(
            blocks[5]["text"]["text"]
                .as_str()
                .unwrap()
                .contains("\"repo_full_name\"")
        );
    }

    #[test]
    fn retention_gets_the_hostname_without_port() {
        let event = Event {
            event_type: EventType::TagRetention,
            retention: Some(json!({"total": 3, "retained": 1, "project_name": "team"})),
            repository: None,
            resources: vec![],
            ..pushed()
        };
        let data = event.event_data(Some("wharf.example:8443"));
        assert_eq!(data["retention"]["harbor_hostname"], "wharf.example");
        assert!(data.get("resources").is_none());
    }
}
