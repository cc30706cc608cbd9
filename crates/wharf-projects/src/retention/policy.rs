//! Retention policies as Harbor writes them ([`PolicyDocument`] and its
//! parts: the wire format of `/retentions` and the storage form of the
//! rules, which is why they carry their OpenAPI schema) and validated
//! ([`PolicySpec`], [`Rule`], [`Template`]).
//!
//! Validation follows Harbor's (algorithm `or`, a `Schedule` trigger with a
//! `cron` setting, project scope, at most 15 rules, no two rules alike,
//! action `retain`, a registered template with its required parameter in
//! range, doublestar selectors), and is stricter where Harbor would store
//! something it cannot evaluate: a selector with an empty pattern, a tag
//! decoration on a repository selector (or the reverse), `extras` that are
//! not `{"untagged": true|false}`, and a cron that is not six valid fields
//! are refused with a message that says which.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::{Error, Result};
use crate::selectors::{Decoration, Selector};

/// Most rules a policy holds (Harbor's limit).
pub const MAX_RULES: usize = 15;

/// Largest count a `latest...` rule takes (Harbor: below `MaxInt16`).
const MAX_COUNT: i64 = i16::MAX as i64 - 1;

/// Largest number of days a `...Days...` rule takes (Harbor's odd bound).
const MAX_DAYS: i64 = 20_190_904;

/// A retention policy as Harbor's API shows and takes it
/// (`RetentionPolicy`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
#[schema(as = RetentionPolicy)]
pub struct PolicyDocument {
    /// The policy's id (ignored in requests: the path says which).
    pub id: i64,
    /// Always `or`: an artifact is kept when any rule keeps it.
    pub algorithm: String,
    /// The rules, at most 15.
    pub rules: Vec<RuleDocument>,
    /// When it runs by itself: `{"kind": "Schedule", "settings": {"cron":
    /// "0 0 0 * * *"}}`; an empty cron means only by hand.
    pub trigger: Option<TriggerDocument>,
    /// Which project: `{"level": "project", "ref": <project id>}`.
    pub scope: Option<ScopeDocument>,
}

/// One rule (`RetentionRule`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
#[schema(as = RetentionRule)]
pub struct RuleDocument {
    /// Its number in the policy (1, 2, ...; assigned on save).
    pub id: i64,
    /// Kept as given.
    pub priority: i64,
    /// A disabled rule keeps nothing and brings no repository into scope.
    pub disabled: bool,
    /// Always `retain`.
    pub action: String,
    /// `latestPushedK`, `latestPulledN`, `nDaysSinceLastPush`,
    /// `nDaysSinceLastPull`, `always` (and Harbor's `latestActiveK` and
    /// `lastXDays`).
    pub template: String,
    /// The template's parameter under its own name:
    /// `{"latestPushedK": 10}`; none for `always`.
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    /// Which artifacts the rule looks at, by tag (all must select).
    pub tag_selectors: Vec<SelectorDocument>,
    /// `{"repository": [...]}`: which repositories, by their name inside
    /// the project (all must select).
    pub scope_selectors: BTreeMap<String, Vec<SelectorDocument>>,
}

/// A selector (`RetentionSelector`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
#[schema(as = RetentionSelector)]
pub struct SelectorDocument {
    /// Always `doublestar`.
    pub kind: String,
    /// `matches` or `excludes` for tags, `repoMatches` or `repoExcludes`
    /// for repositories.
    pub decoration: String,
    /// `*`, `**`, `?`, `{a,b}` and `[a-z]` as in Harbor.
    pub pattern: String,
    /// For tag selectors, a JSON string `{"untagged":true}` or
    /// `{"untagged":false}`: whether untagged artifacts are selected (by
    /// `matches`) or left out (by `excludes`). Without it, `matches`
    /// selects untagged artifacts and `excludes` does too, as in Harbor.
    pub extras: String,
}

/// When a policy runs by itself (`RetentionRuleTrigger`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
#[schema(as = RetentionRuleTrigger)]
pub struct TriggerDocument {
    /// Always `Schedule`.
    pub kind: String,
    /// `{"cron": "<six fields>"}`; `""` for no schedule.
    #[schema(value_type = Object)]
    pub settings: Map<String, Value>,
    /// Accepted and ignored (Harbor keeps its scheduler's job id here).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub references: Option<Value>,
}

/// Which project a policy is for (`RetentionPolicyScope`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
#[schema(as = RetentionPolicyScope)]
pub struct ScopeDocument {
    /// Always `project`.
    pub level: String,
    /// The project's id.
    #[serde(rename = "ref")]
    pub reference: i64,
}

/// What a rule keeps of the candidates its tag selectors select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// The K most recently pushed.
    LatestPushedK(u32),
    /// The N most recently pulled (never-pulled ones come last, newest push
    /// first, as Harbor fills up to N).
    LatestPulledN(u32),
    /// The K most recently pushed or pulled, whichever is later.
    LatestActiveK(u32),
    /// Those pushed within the last N days.
    NDaysSinceLastPush(u32),
    /// Those pulled within the last N days (never pulled: not kept).
    NDaysSinceLastPull(u32),
    /// Those pushed within the last X days (Harbor's older spelling).
    LastXDays(u32),
    /// All of them.
    Always,
}

/// How a template's parameter is bounded.
#[derive(Clone, Copy)]
enum Unit {
    Count,
    Days,
}

impl Template {
    /// Every template Wharf evaluates, with its parameter's unit: Harbor's
    /// registered evaluators.
    const ALL: [(&'static str, Option<Unit>); 7] = [
        ("latestPushedK", Some(Unit::Count)),
        ("latestPulledN", Some(Unit::Count)),
        ("latestActiveK", Some(Unit::Count)),
        ("nDaysSinceLastPush", Some(Unit::Days)),
        ("nDaysSinceLastPull", Some(Unit::Days)),
        ("lastXDays", Some(Unit::Days)),
        ("always", None),
    ];

    /// Harbor's template id (also the name of its parameter).
    pub fn id(self) -> &'static str {
        match self {
            Template::LatestPushedK(_) => "latestPushedK",
            Template::LatestPulledN(_) => "latestPulledN",
            Template::LatestActiveK(_) => "latestActiveK",
            Template::NDaysSinceLastPush(_) => "nDaysSinceLastPush",
            Template::NDaysSinceLastPull(_) => "nDaysSinceLastPull",
            Template::LastXDays(_) => "lastXDays",
            Template::Always => "always",
        }
    }

    /// The parameter, if the template has one.
    pub fn parameter(self) -> Option<u32> {
        match self {
            Template::LatestPushedK(n)
            | Template::LatestPulledN(n)
            | Template::LatestActiveK(n)
            | Template::NDaysSinceLastPush(n)
            | Template::NDaysSinceLastPull(n)
            | Template::LastXDays(n) => Some(n),
            Template::Always => None,
        }
    }

    /// `the 2 most recently pushed`, for logs.
    pub fn describe(self) -> String {
        match self {
            Template::LatestPushedK(n) => format!("the {n} most recently pushed"),
            Template::LatestPulledN(n) => format!("the {n} most recently pulled"),
            Template::LatestActiveK(n) => format!("the {n} most recently pushed or pulled"),
            Template::NDaysSinceLastPush(n) | Template::LastXDays(n) => {
                format!("pushed within the last {n} days")
            }
            Template::NDaysSinceLastPull(n) => format!("pulled within the last {n} days"),
            Template::Always => "always".to_owned(),
        }
    }

    /// Read a template and its parameter from Harbor's fields.
    pub fn parse(template: &str, params: &Map<String, Value>) -> Result<Template> {
        let Some(&(id, unit)) = Template::ALL.iter().find(|(id, _)| *id == template) else {
            return Err(if template.is_empty() {
                Error::Invalid("template is required".into())
            } else {
                Error::Invalid(format!(
                    "unknown rule template {template:?}; one of {} (see /retentions/metadatas)",
                    Template::ALL.map(|(id, _)| id).join(", ")
                ))
            });
        };
        let Some(unit) = unit else {
            return Ok(Template::Always);
        };
        let value = params.get(id).ok_or_else(|| {
            Error::Invalid(format!("missing required parameter {id} for rule {id}"))
        })?;
        let n = whole_number(value)
            .ok_or_else(|| Error::Invalid(format!("{id} must be a whole number, not {value}")))?;
        if n < 0 {
            return Err(Error::Invalid(format!("{id} is less than zero")));
        }
        let max = match unit {
            Unit::Count => MAX_COUNT,
            Unit::Days => MAX_DAYS,
        };
        if n > max {
            return Err(Error::Invalid(format!("{id} is too large (at most {max})")));
        }
        let n = n as u32;
        Ok(match id {
            "latestPushedK" => Template::LatestPushedK(n),
            "latestPulledN" => Template::LatestPulledN(n),
            "latestActiveK" => Template::LatestActiveK(n),
            "nDaysSinceLastPush" => Template::NDaysSinceLastPush(n),
            "nDaysSinceLastPull" => Template::NDaysSinceLastPull(n),
            _ => Template::LastXDays(n),
        })
    }
}

/// A JSON integer, or a number with no fraction (JavaScript clients send
/// `10.0` as readily as `10`).
fn whole_number(value: &Value) -> Option<i64> {
    let Value::Number(n) = value else {
        return None;
    };
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
            .map(|f| f as i64)
    })
}

/// A tag selector with its untagged flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSelector {
    /// The pattern and its decoration.
    pub selector: Selector,
    /// Harbor's `untagged` extra (its default filled in): with `matches`,
    /// untagged artifacts are selected when true; with `excludes`, they
    /// are left out when true.
    pub untagged: bool,
    /// The extras as given, echoed back.
    pub extras: String,
}

impl TagSelector {
    /// Whether an artifact with these tags is selected: with `matches`,
    /// when one of its tags matches; with `excludes`, when one of them does
    /// not; an untagged artifact as the `untagged` flag says.
    pub fn selects(&self, tags: &[String]) -> bool {
        let matches = self.selector.decoration == Decoration::Matches;
        if tags.is_empty() {
            return self.untagged == matches;
        }
        let pattern = &self.selector.pattern;
        if matches {
            tags.iter().any(|t| pattern.matches(t))
        } else {
            tags.iter().any(|t| !pattern.matches(t))
        }
    }
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Its number in the policy, from 1.
    pub id: i64,
    /// Kept as given.
    pub priority: i64,
    /// A disabled rule is ignored by runs.
    pub disabled: bool,
    /// What it keeps.
    pub template: Template,
    /// Which artifacts it looks at (all must select).
    pub tags: Vec<TagSelector>,
    /// Which repositories (names inside the project; all must select).
    pub repositories: Vec<(Selector, String)>,
}

impl Rule {
    /// Whether the rule applies to the repository `name_in_project`.
    pub fn selects_repository(&self, name_in_project: &str) -> bool {
        self.repositories
            .iter()
            .all(|(s, _)| s.selects(name_in_project))
    }

    /// Whether the rule looks at an artifact with these tags.
    pub fn selects_tags(&self, tags: &[String]) -> bool {
        self.tags.iter().all(|s| s.selects(tags))
    }

    /// `rule 2 (the 2 most recently pushed, tags matching **, repositories
    /// matching a/**)`, for logs.
    pub fn describe(&self) -> String {
        let word = |d: Decoration| match d {
            Decoration::Matches => "matching",
            Decoration::Excludes => "excluding",
        };
        let tags: Vec<String> = self
            .tags
            .iter()
            .map(|t| {
                let untagged = match (t.selector.decoration, t.untagged) {
                    (Decoration::Matches, true) => " or untagged",
                    (Decoration::Excludes, false) => " or untagged",
                    _ => "",
                };
                format!(
                    "tags {} {}{untagged}",
                    word(t.selector.decoration),
                    t.selector.pattern.as_str()
                )
            })
            .collect();
        let repositories: Vec<String> = self
            .repositories
            .iter()
            .map(|(s, _)| format!("repositories {} {}", word(s.decoration), s.pattern.as_str()))
            .collect();
        format!(
            "rule {} ({}, {}, {})",
            self.id,
            self.template.describe(),
            tags.join(", "),
            repositories.join(", ")
        )
    }

    /// The rule as Harbor's JSON.
    pub fn to_document(&self) -> RuleDocument {
        let mut params = Map::new();
        if let Some(n) = self.template.parameter() {
            params.insert(self.template.id().to_owned(), Value::from(n));
        }
        RuleDocument {
            id: self.id,
            priority: self.priority,
            disabled: self.disabled,
            action: "retain".into(),
            template: self.template.id().into(),
            params,
            tag_selectors: self
                .tags
                .iter()
                .map(|t| SelectorDocument {
                    kind: "doublestar".into(),
                    decoration: tag_word(t.selector.decoration).into(),
                    pattern: t.selector.pattern.as_str().into(),
                    extras: t.extras.clone(),
                })
                .collect(),
            scope_selectors: BTreeMap::from([(
                "repository".to_owned(),
                self.repositories
                    .iter()
                    .map(|(s, extras)| SelectorDocument {
                        kind: "doublestar".into(),
                        decoration: repository_word(s.decoration).into(),
                        pattern: s.pattern.as_str().into(),
                        extras: extras.clone(),
                    })
                    .collect(),
            )]),
        }
    }

    /// Validate one rule; `position` (from 1) names it in messages and
    /// becomes its id.
    pub fn parse(position: usize, doc: &RuleDocument) -> Result<Rule> {
        let invalid = |what: String| Error::Invalid(format!("rule {position}: {what}"));
        match doc.action.as_str() {
            "retain" => {}
            "" => return Err(invalid("action is required".into())),
            other => {
                return Err(invalid(format!("action must be \"retain\", not {other:?}")));
            }
        }
        let template =
            Template::parse(&doc.template, &doc.params).map_err(|e| invalid(e.to_string()))?;
        if doc.tag_selectors.is_empty() {
            return Err(invalid("a rule needs at least one tag selector".into()));
        }
        let tags = doc
            .tag_selectors
            .iter()
            .map(tag_selector)
            .collect::<Result<Vec<_>>>()
            .map_err(|e| invalid(e.to_string()))?;
        if let Some(key) = doc.scope_selectors.keys().find(|k| *k != "repository") {
            return Err(invalid(format!(
                "unknown scope selector {key:?}: only \"repository\" is supported"
            )));
        }
        let repositories = doc
            .scope_selectors
            .get("repository")
            .filter(|list| !list.is_empty())
            .ok_or_else(|| {
                invalid("a rule needs at least one repository selector under scope_selectors.repository".into())
            })?
            .iter()
            .map(repository_selector)
            .collect::<Result<Vec<_>>>()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Rule {
            id: position as i64,
            priority: doc.priority,
            disabled: doc.disabled,
            template,
            tags,
            repositories,
        })
    }
}

fn tag_word(d: Decoration) -> &'static str {
    match d {
        Decoration::Matches => "matches",
        Decoration::Excludes => "excludes",
    }
}

fn repository_word(d: Decoration) -> &'static str {
    match d {
        Decoration::Matches => "repoMatches",
        Decoration::Excludes => "repoExcludes",
    }
}

fn doublestar(what: &str, doc: &SelectorDocument) -> Result<()> {
    if doc.kind != "doublestar" {
        return Err(Error::Invalid(format!(
            "{what} selector kind must be \"doublestar\", not {:?}",
            doc.kind
        )));
    }
    if doc.pattern.is_empty() {
        return Err(Error::Invalid(format!(
            "{what} selector pattern is required (** selects everything)"
        )));
    }
    Ok(())
}

fn tag_selector(doc: &SelectorDocument) -> Result<TagSelector> {
    doublestar("tag", doc)?;
    if !matches!(doc.decoration.as_str(), "matches" | "excludes") {
        return Err(Error::Invalid(format!(
            "tag selector decoration must be matches or excludes, not {:?}",
            doc.decoration
        )));
    }
    let selector = Selector::parse(&doc.decoration, &doc.pattern)
        .map_err(|e| Error::Invalid(format!("tag selector: {e}")))?;
    // Harbor's default keeps upgrades safe: untagged artifacts are selected
    // by `matches` and not left out by `excludes`.
    let untagged = match untagged_extra(&doc.extras)? {
        Some(flag) => flag,
        None => selector.decoration == Decoration::Matches,
    };
    Ok(TagSelector {
        selector,
        untagged,
        extras: doc.extras.clone(),
    })
}

/// The `untagged` flag of a tag selector's extras (`None` when not given).
fn untagged_extra(extras: &str) -> Result<Option<bool>> {
    if extras.trim().is_empty() {
        return Ok(None);
    }
    let bad = || {
        Error::Invalid(format!(
            "tag selector extras must be a JSON object such as {{\"untagged\":true}}, not {extras:?}"
        ))
    };
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(extras) else {
        return Err(bad());
    };
    match map.get("untagged") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" => Ok(Some(true)),
        Some(Value::String(s)) if s == "false" => Ok(Some(false)),
        Some(_) => Err(bad()),
    }
}

fn repository_selector(doc: &SelectorDocument) -> Result<(Selector, String)> {
    doublestar("repository", doc)?;
    if !matches!(doc.decoration.as_str(), "repoMatches" | "repoExcludes") {
        return Err(Error::Invalid(format!(
            "repository selector decoration must be repoMatches or repoExcludes, not {:?}",
            doc.decoration
        )));
    }
    let selector = Selector::parse(&doc.decoration, &doc.pattern)
        .map_err(|e| Error::Invalid(format!("repository selector: {e}")))?;
    Ok((selector, doc.extras.clone()))
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    /// The project it is for (`scope.ref`).
    pub project_id: i64,
    /// Its rules, numbered from 1.
    pub rules: Vec<Rule>,
    /// The schedule's six-field cron, if it runs by itself.
    pub cron: Option<String>,
}

impl PolicySpec {
    /// Validate a policy document (see the module comment for the rules).
    /// Two identical rules are a [`Error::Conflict`]; everything else wrong
    /// is [`Error::Invalid`] with a message that says what.
    pub fn parse(doc: &PolicyDocument) -> Result<PolicySpec> {
        if !doc.algorithm.eq_ignore_ascii_case("or") {
            return Err(Error::Invalid(if doc.algorithm.is_empty() {
                "algorithm is required: \"or\"".to_owned()
            } else {
                format!("algorithm must be \"or\", not {:?}", doc.algorithm)
            }));
        }
        let scope = doc.scope.as_ref().ok_or_else(|| {
            Error::Invalid(
                "scope is required: {\"level\": \"project\", \"ref\": <project id>}".into(),
            )
        })?;
        if scope.level != "project" {
            return Err(Error::Invalid(format!(
                "scope {:?} is not supported: only \"project\"",
                scope.level
            )));
        }
        if scope.reference <= 0 {
            return Err(Error::Invalid(format!(
                "invalid Project id {}",
                scope.reference
            )));
        }
        let cron = cron_of(doc.trigger.as_ref())?;
        if doc.rules.len() > MAX_RULES {
            return Err(Error::Invalid(format!(
                "only {MAX_RULES} rules are allowed at most"
            )));
        }
        let rules = doc
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| Rule::parse(i + 1, r))
            .collect::<Result<Vec<_>>>()?;
        for (i, rule) in rules.iter().enumerate() {
            let mut mine = rule.to_document();
            mine.id = 0;
            if let Some(j) = rules[..i].iter().position(|earlier| {
                let mut theirs = earlier.to_document();
                theirs.id = 0;
                theirs == mine
            }) {
                return Err(Error::Conflict(format!(
                    "rule {} is the same as rule {}",
                    i + 1,
                    j + 1
                )));
            }
        }
        Ok(PolicySpec {
            project_id: scope.reference,
            rules,
            cron,
        })
    }

    /// The rules as stored (Harbor's JSON).
    pub fn rules_json(&self) -> Value {
        serde_json::to_value(self.rules.iter().map(Rule::to_document).collect::<Vec<_>>())
            .unwrap_or(Value::Array(Vec::new()))
    }

    /// The policy as Harbor's JSON, with its id.
    pub fn to_document(&self, id: i64) -> PolicyDocument {
        PolicyDocument {
            id,
            algorithm: "or".into(),
            rules: self.rules.iter().map(Rule::to_document).collect(),
            trigger: Some(TriggerDocument {
                kind: "Schedule".into(),
                settings: Map::from_iter([(
                    "cron".to_owned(),
                    Value::String(self.cron.clone().unwrap_or_default()),
                )]),
                references: None,
            }),
            scope: Some(ScopeDocument {
                level: "project".into(),
                reference: self.project_id,
            }),
        }
    }

    /// The enabled rules that apply to a repository (its name inside the
    /// project); none means it is not in scope.
    pub fn rules_for(&self, name_in_project: &str) -> Vec<&Rule> {
        self.rules
            .iter()
            .filter(|r| !r.disabled && r.selects_repository(name_in_project))
            .collect()
    }
}

/// The schedule a trigger asks for: `None` for an empty cron.
fn cron_of(trigger: Option<&TriggerDocument>) -> Result<Option<String>> {
    let trigger = trigger.ok_or_else(|| {
        Error::Invalid(
            "trigger is required: {\"kind\": \"Schedule\", \"settings\": {\"cron\": \"...\"}}"
                .into(),
        )
    })?;
    if trigger.kind != "Schedule" {
        return Err(Error::Invalid(format!(
            "trigger kind must be \"Schedule\", not {:?}",
            trigger.kind
        )));
    }
    let cron = match trigger.settings.get("cron") {
        None => {
            return Err(Error::Invalid(
                "trigger settings need a cron (\"\" for no schedule)".into(),
            ));
        }
        Some(Value::Null) => "",
        Some(Value::String(s)) => s.trim(),
        Some(other) => {
            return Err(Error::Invalid(format!(
                "trigger cron must be a string, not {other}"
            )));
        }
    };
    if cron.is_empty() {
        return Ok(None);
    }
    wharf_jobs::validate_cron(cron).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(Some(cron.split_whitespace().collect::<Vec<_>>().join(" ")))
}

/// Re-validate stored rules (written by [`PolicySpec::rules_json`]).
pub(crate) fn stored_rules(policy_id: i64, json: &Value) -> Result<Vec<Rule>> {
    let docs: Vec<RuleDocument> = serde_json::from_value(json.clone()).map_err(|e| {
        Error::Internal(format!(
            "stored retention policy {policy_id} is unreadable: {e}"
        ))
    })?;
    docs.iter()
        .enumerate()
        .map(|(i, r)| Rule::parse(i + 1, r))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| {
            Error::Internal(format!(
                "stored retention policy {policy_id} is invalid: {e}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(rules: Value, cron: &str) -> PolicyDocument {
        serde_json::from_value(json!({
            "algorithm": "or",
            "rules": rules,
            "trigger": {"kind": "Schedule", "settings": {"cron": cron}},
            "scope": {"level": "project", "ref": 7},
        }))
        .unwrap()
    }

    fn rule(template: &str, params: Value, tag: Value, repo: &str) -> Value {
        json!({
            "action": "retain", "template": template, "params": params,
            "tag_selectors": [tag],
            "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": repo}]},
        })
    }

    fn tag(decoration: &str, pattern: &str, extras: &str) -> Value {
        json!({"kind": "doublestar", "decoration": decoration, "pattern": pattern, "extras": extras})
    }

    fn err(d: PolicyDocument) -> String {
        PolicySpec::parse(&d).unwrap_err().to_string()
    }

    #[test]
    fn a_harbor_policy_round_trips() {
        let d = doc(
            json!([
                rule(
                    "latestPushedK",
                    json!({"latestPushedK": 2}),
                    tag("matches", "**", ""),
                    "a/**"
                ),
                rule(
                    "nDaysSinceLastPull",
                    json!({"nDaysSinceLastPull": 7.0}),
                    tag("matches", "**", r#"{"untagged":false}"#),
                    "**"
                ),
                rule("always", json!({}), tag("matches", "release-*", ""), "**"),
            ]),
            "0 0 3 * * *",
        );
        let spec = PolicySpec::parse(&d).unwrap();
        assert_eq!(spec.project_id, 7);
        assert_eq!(spec.cron.as_deref(), Some("0 0 3 * * *"));
        assert_eq!(spec.rules[0].template, Template::LatestPushedK(2));
        assert_eq!(spec.rules[1].template, Template::NDaysSinceLastPull(7));
        assert!(!spec.rules[1].tags[0].untagged);
        assert!(
            spec.rules[2].tags[0].untagged,
            "matches selects untagged by default"
        );
        let back = spec.to_document(3);
        assert_eq!(back.id, 3);
        assert_eq!(back.rules[1].id, 2);
        assert_eq!(
            back.rules[1].params,
            Map::from_iter([("nDaysSinceLastPull".to_owned(), json!(7))])
        );
        assert_eq!(
            back.rules[1].tag_selectors[0].extras,
            r#"{"untagged":false}"#
        );
        assert_eq!(PolicySpec::parse(&back).unwrap(), spec);
        assert_eq!(stored_rules(3, &spec.rules_json()).unwrap(), spec.rules);
        assert_eq!(spec.rules_for("a/x").len(), 3);
        assert_eq!(spec.rules_for("b").len(), 2);
        let none = PolicySpec::parse(&doc(json!([]), "")).unwrap();
        assert_eq!(none.cron, None);
    }

    #[test]
    fn untagged_follows_harbor() {
        let sel = |d: &str, p: &str, e: &str| {
            tag_selector(&serde_json::from_value(tag(d, p, e)).unwrap()).unwrap()
        };
        let none: Vec<String> = vec![];
        let v1 = vec!["v1".to_owned()];
        let both = vec!["v1".to_owned(), "dev".to_owned()];
        assert!(sel("matches", "v*", "").selects(&none));
        assert!(!sel("matches", "v*", r#"{"untagged":false}"#).selects(&none));
        assert!(sel("excludes", "v*", "").selects(&none));
        assert!(!sel("excludes", "v*", r#"{"untagged":true}"#).selects(&none));
        assert!(sel("matches", "v*", "").selects(&v1));
        assert!(!sel("excludes", "v*", "").selects(&v1));
        assert!(
            sel("excludes", "v*", "").selects(&both),
            "one tag outside the pattern"
        );
    }

    #[test]
    fn validation_says_what_is_wrong() {
        let ok = || {
            rule(
                "latestPushedK",
                json!({"latestPushedK": 2}),
                tag("matches", "**", ""),
                "**",
            )
        };
        assert!(
            err(doc(
                json!([rule("newest", json!({}), tag("matches", "**", ""), "**")]),
                ""
            ))
            .contains("unknown rule template")
        );
        assert!(
            err(doc(
                json!([rule(
                    "latestPushedK",
                    json!({}),
                    tag("matches", "**", ""),
                    "**"
                )]),
                ""
            ))
            .contains("missing required parameter latestPushedK")
        );
        assert!(
            err(doc(
                json!([rule(
                    "latestPushedK",
                    json!({"latestPushedK": "2"}),
                    tag("matches", "**", ""),
                    "**"
                )]),
                ""
            ))
            .contains("whole number")
        );
        assert!(
            err(doc(
                json!([rule(
                    "latestPushedK",
                    json!({"latestPushedK": -1}),
                    tag("matches", "**", ""),
                    "**"
                )]),
                ""
            ))
            .contains("less than zero")
        );
        assert!(
            err(doc(
                json!([rule(
                    "latestPulledN",
                    json!({"latestPulledN": 40000}),
                    tag("matches", "**", ""),
                    "**"
                )]),
                ""
            ))
            .contains("too large")
        );
        assert!(
            err(doc(
                json!([rule("always", json!({}), tag("matches", "", ""), "**")]),
                ""
            ))
            .contains("pattern is required")
        );
        assert!(
            err(doc(
                json!([rule("always", json!({}), tag("repoMatches", "x", ""), "**")]),
                ""
            ))
            .contains("matches or excludes")
        );
        assert!(
            err(doc(
                json!([rule("always", json!({}), tag("matches", "{a,b", ""), "**")]),
                ""
            ))
            .contains("tag selector")
        );
        assert!(
            err(doc(
                json!([rule(
                    "always",
                    json!({}),
                    tag("matches", "x", "untagged"),
                    "**"
                )]),
                ""
            ))
            .contains("extras")
        );
        assert!(
            err(doc(
                json!([rule("always", json!({}), tag("matches", "x", ""), "[ab")]),
                ""
            ))
            .contains("repository selector")
        );
        let mut r = ok();
        r["scope_selectors"] = json!({"repository": [{"kind": "doublestar", "decoration": "matches", "pattern": "**"}]});
        assert!(err(doc(json!([r]), "")).contains("repoMatches or repoExcludes"));
        let mut r = ok();
        r["scope_selectors"] = json!({});
        assert!(err(doc(json!([r]), "")).contains("at least one repository selector"));
        let mut r = ok();
        r["tag_selectors"] = json!([{"kind": "regex", "decoration": "matches", "pattern": "x"}]);
        assert!(err(doc(json!([r]), "")).contains("doublestar"));
        let mut r = ok();
        r["action"] = json!("delete");
        assert!(err(doc(json!([r]), "")).contains("retain"));
        assert!(err(doc(json!([ok()]), "0 0 * * *")).contains("expected 6 fields"));
        assert!(err(doc(json!([ok()]), "every day")).contains("invalid cron"));
        assert!(matches!(
            PolicySpec::parse(&doc(json!([ok(), ok()]), "")),
            Err(Error::Conflict(_))
        ));
        let sixteen: Vec<Value> = (0..16)
            .map(|i| {
                rule(
                    "latestPushedK",
                    json!({"latestPushedK": i}),
                    tag("matches", "**", ""),
                    "**",
                )
            })
            .collect();
        assert!(err(doc(json!(sixteen), "")).contains("15 rules"));
        let mut d = doc(json!([ok()]), "");
        d.algorithm = "and".into();
        assert!(err(d).contains("algorithm"));
        let mut d = doc(json!([ok()]), "");
        d.scope = None;
        assert!(err(d).contains("scope is required"));
        let mut d = doc(json!([ok()]), "");
        d.trigger.as_mut().unwrap().settings.clear();
        assert!(err(d).contains("cron"));
        let mut d = doc(json!([ok()]), "");
        d.trigger.as_mut().unwrap().kind = "Event".into();
        assert!(err(d).contains("Schedule"));
    }
}
