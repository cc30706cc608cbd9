//! Administration → Replications: the policies (create, edit,
//! enable/disable, delete, **Replicate now**), a policy's executions (with
//! **Stop**), an execution's tasks and each task's log. Everything goes
//! through `wharf_replication::policies`, the functions
//! `/replication/policies` and `/replication/executions` call, with the
//! same rules: one side is this Wharf, the other a registry endpoint.
//! Access is the API's system `replication-policy` (policies) and
//! `replication` (executions) resources.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use wharf_jobs::{ExecutionStatus, Trigger};
use wharf_replication::policies::{
    self, ExecutionFilter, ExecutionSummary, Policy, PolicySpec, PolicyTrigger, Task,
};
use wharf_replication::registries::RegistryRecord;

use super::{form_failed, ticked, unconfirmed};
use crate::access;
use crate::error::{UiError, UiResult};
use crate::format;
use crate::layout::{self, Chrome};
use crate::paging::{PageQuery, Pager};
use crate::session::{PostedForm, Services, Viewer};

const REPLICATIONS: &str = "/admin/replications";
const POLICY: &str = "replication-policy";
const EXECUTION: &str = "replication";

fn policy_url(id: i64) -> String {
    format!("{REPLICATIONS}/{id}")
}

fn trigger_word(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Manual => "manual",
        Trigger::Schedule => "scheduled",
        Trigger::Event => "event-based",
    }
}

/// Badges of execution statuses (wharf-jobs') and task statuses
/// (`Succeed`, `Failed`, `Pending`, `Running`).
fn badge(status: &str) -> &'static str {
    match status {
        "Succeed" => "public",
        "Failed" => "danger",
        other => format::status_badge(other),
    }
}

fn is_going(status: ExecutionStatus) -> bool {
    matches!(
        status,
        ExecutionStatus::Pending | ExecutionStatus::Running | ExecutionStatus::Stopping
    )
}

/// An endpoint's name for people; `None` is this Wharf.
fn side_name(registries: &[RegistryRecord], id: Option<i64>) -> String {
    match id {
        None => "this Wharf".to_owned(),
        Some(id) => registries
            .iter()
            .find(|r| r.id == id)
            .map_or_else(|| format!("registry {id}"), |r| r.name.clone()),
    }
}

fn filters_words(p: &Policy) -> String {
    let mut words = Vec::new();
    let decorated = |excludes: bool| if excludes { "not " } else { "" };
    if let Some(f) = p.name_filter.as_deref().filter(|f| !f.is_empty()) {
        words.push(format!("name {}{f}", decorated(p.name_excludes)));
    }
    if let Some(f) = p.tag_filter.as_deref().filter(|f| !f.is_empty()) {
        words.push(format!("tag {}{f}", decorated(p.tag_excludes)));
    }
    if !p.label_include.is_empty() {
        words.push(format!("labels {}", p.label_include.join(", ")));
    }
    if !p.label_exclude.is_empty() {
        words.push(format!("without labels {}", p.label_exclude.join(", ")));
    }
    if let Some(r) = &p.resource_filter {
        words.push(format!("{r}s only"));
    }
    if words.is_empty() {
        "everything".to_owned()
    } else {
        words.join(" · ")
    }
}

fn policy_trigger_words(t: &PolicyTrigger) -> String {
    match t {
        PolicyTrigger::Manual => "manual".to_owned(),
        PolicyTrigger::Scheduled(cron) => format!("scheduled {cron}"),
        PolicyTrigger::EventBased => "event-based".to_owned(),
    }
}

/// What the policy form starts from: a policy's values, or a new one's.
pub(crate) struct PolicyFormValues {
    name: String,
    description: String,
    pull: bool,
    registry_id: i64,
    name_filter: String,
    name_excludes: bool,
    tag_filter: String,
    tag_excludes: bool,
    labels: String,
    images_only: bool,
    dest_namespace: String,
    replace_count: i32,
    trigger: &'static str,
    cron: String,
    override_tags: bool,
    replicate_deletion: bool,
    speed: String,
    copy_by_chunk: bool,
    enabled: bool,
}

impl PolicyFormValues {
    fn new_policy() -> Self {
        PolicyFormValues {
            name: String::new(),
            description: String::new(),
            pull: false,
            registry_id: 0,
            name_filter: String::new(),
            name_excludes: false,
            tag_filter: String::new(),
            tag_excludes: false,
            labels: String::new(),
            images_only: false,
            dest_namespace: String::new(),
            replace_count: -1,
            trigger: "manual",
            cron: String::new(),
            override_tags: true,
            replicate_deletion: false,
            speed: String::new(),
            copy_by_chunk: false,
            enabled: true,
        }
    }

    fn of(p: &Policy) -> Self {
        let pull = p.src_registry_id.is_some();
        PolicyFormValues {
            name: p.name.clone(),
            description: p.description.clone(),
            pull,
            registry_id: if pull {
                p.src_registry_id
            } else {
                p.dest_registry_id
            }
            .unwrap_or_default(),
            name_filter: p.name_filter.clone().unwrap_or_default(),
            name_excludes: p.name_excludes,
            tag_filter: p.tag_filter.clone().unwrap_or_default(),
            tag_excludes: p.tag_excludes,
            labels: p.label_include.join(", "),
            images_only: p.resource_filter.as_deref() == Some("image"),
            dest_namespace: p.dest_namespace.clone().unwrap_or_default(),
            replace_count: if p.dest_namespace.is_some() {
                p.dest_namespace_replace_count
            } else {
                -1
            },
            trigger: p.trigger.type_name(),
            cron: p.trigger.cron().unwrap_or_default().to_owned(),
            override_tags: p.override_tags,
            replicate_deletion: p.replicate_deletion,
            speed: p.speed_kb.map(|s| s.to_string()).unwrap_or_default(),
            copy_by_chunk: p.copy_by_chunk,
            enabled: p.enabled,
        }
    }
}

/// Harbor's flattening choices for the destination namespace.
const FLATTENING: [(i32, &str); 5] = [
    (-1, "Flatten all levels"),
    (0, "No flattening"),
    (1, "Flatten 1 level"),
    (2, "Flatten 2 levels"),
    (3, "Flatten 3 levels"),
];

pub(crate) struct PolicyRow {
    id: i64,
    name: String,
    description: String,
    pull: bool,
    source: String,
    destination: String,
    filters: String,
    trigger: String,
    enabled: bool,
    last_status: String,
    last_badge: &'static str,
    last_id: i64,
}

#[derive(Template)]
#[template(path = "admin_replications.html")]
struct PoliciesPage {
    chrome: Chrome,
    tab: &'static str,
    rows: Vec<PolicyRow>,
    stray: Option<String>,
    pager: Pager,
    registries: Vec<RegistryRecord>,
    form: PolicyFormValues,
    form_action: String,
    form_id: &'static str,
    flattening: &'static [(i32, &'static str)],
    can_create: bool,
    can_update: bool,
    can_delete: bool,
    can_run: bool,
}

async fn last_execution(pool: &sqlx::PgPool, policy_id: i64) -> UiResult<Option<ExecutionSummary>> {
    let (items, _) = policies::list_executions(
        pool,
        &ExecutionFilter {
            policy_id: Some(policy_id),
            page: 1,
            page_size: 1,
            ..ExecutionFilter::default()
        },
    )
    .await?;
    Ok(items.into_iter().next())
}

/// `GET /admin/replications`.
pub(crate) async fn list(
    services: Services,
    viewer: Viewer,
    query: web::Query<PageQuery>,
) -> UiResult<HttpResponse> {
    access::require_system(&viewer, POLICY, "list")?;
    let pool = services.pool.get_ref();
    let registries = services.registries()?.list().await?;
    let all = policies::list_policies(pool).await?;
    let page = query.page();
    let size = page.page_size.max(1) as usize;
    let skip = (page.page.max(1) as usize - 1).saturating_mul(size);
    let mut rows = Vec::new();
    // One small query per shown row (at most a page of them): the domain
    // has no "latest execution of each policy" listing.
    for p in all.iter().skip(skip).take(size) {
        let last = last_execution(pool, p.id).await?;
        rows.push(PolicyRow {
            id: p.id,
            name: p.name.clone(),
            description: p.description.clone(),
            pull: p.src_registry_id.is_some(),
            source: side_name(&registries, p.src_registry_id),
            destination: side_name(&registries, p.dest_registry_id),
            filters: filters_words(p),
            trigger: policy_trigger_words(&p.trigger),
            enabled: p.enabled,
            last_status: last
                .as_ref()
                .map(|e| e.status.as_str().to_owned())
                .unwrap_or_default(),
            last_badge: last
                .as_ref()
                .map_or("private", |e| badge(e.status.as_str())),
            last_id: last.map_or(0, |e| e.id),
        });
    }
    let chrome = Chrome::new(&viewer, "Replications", "admin");
    let mut forms: Vec<String> = rows.iter().map(|r| format!("policy-{}", r.id)).collect();
    forms.push("create-policy".into());
    let forms: Vec<&str> = forms.iter().map(String::as_str).collect();
    let stray = chrome.stray_error(&forms).map(str::to_owned);
    let principal = viewer.principal();
    Ok(layout::ok(&PoliciesPage {
        chrome,
        tab: "replications",
        rows,
        stray,
        pager: Pager::new(REPLICATIONS, &[], page, all.len() as i64),
        registries,
        form: PolicyFormValues::new_policy(),
        form_action: REPLICATIONS.to_owned(),
        form_id: "create-policy",
        flattening: &FLATTENING,
        can_create: principal.can_system(POLICY, "create"),
        can_update: principal.can_system(POLICY, "update"),
        can_delete: principal.can_system(POLICY, "delete"),
        can_run: principal.can_system(EXECUTION, "create"),
    }))
}

#[derive(Deserialize)]
pub(crate) struct PolicyForm {
    name: String,
    #[serde(default)]
    description: String,
    /// `push` (this Wharf → the registry) or `pull` (the registry → this Wharf).
    direction: String,
    registry_id: String,
    #[serde(default)]
    name_filter: String,
    name_excludes: Option<String>,
    #[serde(default)]
    tag_filter: String,
    tag_excludes: Option<String>,
    /// Label names, separated by commas: an artifact must carry them all.
    #[serde(default)]
    labels: String,
    images_only: Option<String>,
    #[serde(default)]
    dest_namespace: String,
    #[serde(default)]
    replace_count: String,
    /// `manual`, `scheduled` or `event_based`.
    trigger: String,
    #[serde(default)]
    cron: String,
    override_tags: Option<String>,
    replicate_deletion: Option<String>,
    #[serde(default)]
    speed: String,
    copy_by_chunk: Option<String>,
    enabled: Option<String>,
}

/// The form as a library spec, with the REST API's rules: exactly one
/// side is this Wharf, the other an existing endpoint; the flattening
/// count applies only under a destination namespace.
async fn spec_of(services: &Services, form: &PolicyForm) -> UiResult<PolicySpec> {
    let registry_id: i64 = form
        .registry_id
        .trim()
        .parse()
        .map_err(|_| UiError::BadRequest("Pick the registry to replicate with.".into()))?;
    if services.registries()?.get(registry_id).await?.is_none() {
        return Err(UiError::BadRequest(format!(
            "There is no registry {registry_id}."
        )));
    }
    let (src, dest) = match form.direction.as_str() {
        "push" => (None, Some(registry_id)),
        "pull" => (Some(registry_id), None),
        _ => {
            return Err(UiError::BadRequest(
                "Pick push-based or pull-based replication.".into(),
            ));
        }
    };
    let filled = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let dest_namespace = filled(form.dest_namespace.trim_matches('/'));
    let replace_count = match &dest_namespace {
        Some(_) => form.replace_count.trim().parse().map_err(|_| {
            UiError::BadRequest("Pick how the destination namespace flattens paths.".into())
        })?,
        None => 0,
    };
    let speed_kb = match form.speed.trim() {
        "" => None,
        s => Some(s.parse::<i32>().map_err(|_| {
            UiError::BadRequest("The speed is a number of KB/s (empty or -1: unlimited).".into())
        })?),
    };
    if speed_kb.is_some_and(|s| s < -1) {
        return Err(UiError::BadRequest(
            "The speed must be -1 (unlimited) or more.".into(),
        ));
    }
    let spec = PolicySpec {
        name: form.name.trim().to_owned(),
        description: form.description.trim().to_owned(),
        src_registry_id: src,
        dest_registry_id: dest,
        dest_namespace,
        dest_namespace_replace_count: replace_count,
        name_filter: filled(&form.name_filter),
        name_excludes: ticked(&form.name_excludes),
        tag_filter: filled(&form.tag_filter),
        tag_excludes: ticked(&form.tag_excludes),
        label_include: form
            .labels
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        label_exclude: Vec::new(),
        resource_filter: ticked(&form.images_only).then(|| "image".to_owned()),
        trigger: PolicyTrigger::parse(form.trigger.trim(), Some(&form.cron))?,
        override_tags: ticked(&form.override_tags),
        replicate_deletion: ticked(&form.replicate_deletion),
        speed_kb: speed_kb.filter(|s| *s > 0),
        copy_by_chunk: ticked(&form.copy_by_chunk),
        enabled: ticked(&form.enabled),
    };
    policies::require_one_local(&spec)?;
    policies::validate(&spec)?;
    Ok(spec)
}

/// The domain's taken-name error, in the console's words.
async fn name_free(pool: &sqlx::PgPool, name: &str, except: Option<i64>) -> UiResult<()> {
    if let Some(existing) = policies::get_policy_by_name(pool, name).await?
        && Some(existing.id) != except
    {
        return Err(UiError::BadRequest(format!(
            "A replication policy named {name} already exists."
        )));
    }
    Ok(())
}

/// `POST /admin/replications`.
pub(crate) async fn create(
    services: Services,
    viewer: Viewer,
    PostedForm(form): PostedForm<PolicyForm>,
) -> HttpResponse {
    let done = async {
        access::require_system(&viewer, POLICY, "create")?;
        let spec = spec_of(&services, &form).await?;
        let pool = services.pool.get_ref();
        name_free(pool, &spec.name, None).await?;
        let policy = policies::create_policy(pool, &spec).await?;
        Ok(layout::see_other(
            &policy_url(policy.id),
            Some(&format!("Replication policy {} created.", policy.name)),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, REPLICATIONS, "create-policy"))
}

async fn existing(services: &Services, id: i64) -> UiResult<Policy> {
    policies::get_policy(services.pool.get_ref(), id)
        .await?
        .ok_or_else(|| UiError::not_found(format!("There is no replication policy {id}.")))
}

pub(crate) struct ExecutionRow {
    id: i64,
    status: String,
    badge: &'static str,
    status_text: String,
    trigger: &'static str,
    started: String,
    finished: String,
    total: i64,
    succeed: i64,
    failed: i64,
    in_progress: i64,
    stopped: i64,
    going: bool,
}

impl From<ExecutionSummary> for ExecutionRow {
    fn from(e: ExecutionSummary) -> Self {
        ExecutionRow {
            id: e.id,
            status: e.status.as_str().to_owned(),
            badge: badge(e.status.as_str()),
            status_text: e.status_text,
            trigger: trigger_word(e.trigger),
            started: format::time(e.started_at.unwrap_or(e.created_at)),
            finished: format::maybe_time(e.finished_at),
            total: e.total,
            succeed: e.succeed,
            failed: e.failed,
            in_progress: e.in_progress,
            stopped: e.stopped,
            going: is_going(e.status),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_replication.html")]
struct PolicyPage {
    chrome: Chrome,
    tab: &'static str,
    id: i64,
    row: PolicyRow,
    executions: Vec<ExecutionRow>,
    /// An error of a form not shown next to anything here (the policy's
    /// buttons, an execution on another page).
    stray: Option<String>,
    pager: Pager,
    registries: Vec<RegistryRecord>,
    form: PolicyFormValues,
    form_action: String,
    form_id: &'static str,
    flattening: &'static [(i32, &'static str)],
    can_update: bool,
    can_delete: bool,
    can_run: bool,
}

/// `GET /admin/replications/{id}`: the policy, its edit form and its executions.
pub(crate) async fn show(
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
    query: web::Query<PageQuery>,
) -> UiResult<HttpResponse> {
    access::require_system(&viewer, POLICY, "read")?;
    access::require_system(&viewer, EXECUTION, "list")?;
    let id = path.into_inner();
    let policy = existing(&services, id).await?;
    let registries = services.registries()?.list().await?;
    let page = query.page();
    let (items, total) = policies::list_executions(
        services.pool.get_ref(),
        &ExecutionFilter {
            policy_id: Some(id),
            page: page.page,
            page_size: page.page_size,
            ..ExecutionFilter::default()
        },
    )
    .await?;
    let last = items.first().cloned();
    let url = policy_url(id);
    let chrome = Chrome::new(&viewer, format!("Replication {}", policy.name), "admin");
    let mut forms: Vec<String> = items
        .iter()
        .map(|e| format!("execution-{}", e.id))
        .collect();
    forms.push("edit-policy".into());
    let forms: Vec<&str> = forms.iter().map(String::as_str).collect();
    let stray = chrome.stray_error(&forms).map(str::to_owned);
    let principal = viewer.principal();
    Ok(layout::ok(&PolicyPage {
        chrome,
        stray,
        tab: "replications",
        id,
        row: PolicyRow {
            id,
            name: policy.name.clone(),
            description: policy.description.clone(),
            pull: policy.src_registry_id.is_some(),
            source: side_name(&registries, policy.src_registry_id),
            destination: side_name(&registries, policy.dest_registry_id),
            filters: filters_words(&policy),
            trigger: policy_trigger_words(&policy.trigger),
            enabled: policy.enabled,
            last_status: last
                .as_ref()
                .map(|e| e.status.as_str().to_owned())
                .unwrap_or_default(),
            last_badge: last
                .as_ref()
                .map_or("private", |e| badge(e.status.as_str())),
            last_id: last.map_or(0, |e| e.id),
        },
        executions: items.into_iter().map(ExecutionRow::from).collect(),
        pager: Pager::new(&url, &[], page, total),
        registries,
        form: PolicyFormValues::of(&policy),
        form_action: url,
        form_id: "edit-policy",
        flattening: &FLATTENING,
        can_update: principal.can_system(POLICY, "update"),
        can_delete: principal.can_system(POLICY, "delete"),
        can_run: principal.can_system(EXECUTION, "create"),
    }))
}

/// `POST /admin/replications/{id}`: replace the policy's settings.
pub(crate) async fn update(
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
    PostedForm(form): PostedForm<PolicyForm>,
) -> HttpResponse {
    let id = path.into_inner();
    let done = async {
        access::require_system(&viewer, POLICY, "update")?;
        existing(&services, id).await?;
        let spec = spec_of(&services, &form).await?;
        let pool = services.pool.get_ref();
        name_free(pool, &spec.name, Some(id)).await?;
        policies::update_policy(pool, id, &spec)
            .await?
            .ok_or_else(|| UiError::not_found(format!("There is no replication policy {id}.")))?;
        Ok(layout::see_other(
            &policy_url(id),
            Some(&format!("Replication policy {} saved.", spec.name)),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &policy_url(id), "edit-policy"))
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    confirm: Option<String>,
    enabled: Option<String>,
    /// Where to go back to: the list or the policy's page.
    back: Option<String>,
}

impl ActionForm {
    fn back(&self, id: i64) -> String {
        match self.back.as_deref() {
            Some("list") => REPLICATIONS.to_owned(),
            _ => policy_url(id),
        }
    }
}

/// The spec a stored policy was made from, to change one setting of it.
fn spec_from(p: &Policy) -> PolicySpec {
    PolicySpec {
        name: p.name.clone(),
        description: p.description.clone(),
        src_registry_id: p.src_registry_id,
        dest_registry_id: p.dest_registry_id,
        dest_namespace: p.dest_namespace.clone(),
        dest_namespace_replace_count: p.dest_namespace_replace_count,
        name_filter: p.name_filter.clone(),
        name_excludes: p.name_excludes,
        tag_filter: p.tag_filter.clone(),
        tag_excludes: p.tag_excludes,
        label_include: p.label_include.clone(),
        label_exclude: p.label_exclude.clone(),
        resource_filter: p.resource_filter.clone(),
        trigger: p.trigger.clone(),
        override_tags: p.override_tags,
        replicate_deletion: p.replicate_deletion,
        speed_kb: p.speed_kb,
        copy_by_chunk: p.copy_by_chunk,
        enabled: p.enabled,
    }
}

/// `POST /admin/replications/{id}/enabled`: `enabled=true|false` (a
/// scheduled policy's schedule goes and comes with it).
pub(crate) async fn set_enabled(
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
    PostedForm(form): PostedForm<ActionForm>,
) -> HttpResponse {
    let id = path.into_inner();
    let back = form.back(id);
    let done = async {
        access::require_system(&viewer, POLICY, "update")?;
        let policy = existing(&services, id).await?;
        let mut spec = spec_from(&policy);
        spec.enabled = form.enabled.as_deref() == Some("true");
        policies::update_policy(services.pool.get_ref(), id, &spec).await?;
        Ok(layout::see_other(
            &back,
            Some(&format!(
                "Replication policy {} is {}.",
                policy.name,
                if spec.enabled { "enabled" } else { "disabled" }
            )),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("policy-{id}")))
}

/// `POST /admin/replications/{id}/delete`: refused while an execution
/// waits or runs.
pub(crate) async fn delete(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
    PostedForm(form): PostedForm<ActionForm>,
) -> HttpResponse {
    let id = path.into_inner();
    let back = form.back(id);
    let done = async {
        access::require_system(&viewer, POLICY, "delete")?;
        let policy = existing(&services, id).await?;
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!("Delete the replication policy {}?", policy.name),
            &back,
        ) {
            return Ok(page);
        }
        let pool = services.pool.get_ref();
        let active = policies::active_executions(pool, id).await?;
        if active > 0 {
            return Err(UiError::BadRequest(format!(
                "{} has {active} executions waiting or running: stop them first.",
                policy.name
            )));
        }
        policies::delete_policy(pool, id).await?;
        Ok(layout::see_other(
            REPLICATIONS,
            Some(&format!("Replication policy {} deleted.", policy.name)),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("policy-{id}")))
}

/// `POST /admin/replications/{id}/run`: **Replicate now**.
pub(crate) async fn run(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
    PostedForm(form): PostedForm<ActionForm>,
) -> HttpResponse {
    let id = path.into_inner();
    let back = form.back(id);
    let done = async {
        access::require_system(&viewer, EXECUTION, "create")?;
        let policy = existing(&services, id).await?;
        // It may overwrite or delete tags at the destination: ask first.
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!("Replicate {} now?", policy.name),
            &back,
        ) {
            return Ok(page);
        }
        let execution =
            policies::start_execution(services.pool.get_ref(), id, Trigger::Manual).await?;
        Ok(layout::see_other(
            &policy_url(id),
            Some(&format!(
                "Execution {execution} of {} started.",
                policy.name
            )),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("policy-{id}")))
}

/// Execution `eid` of policy `id`; another policy's is "not found".
async fn execution_of(services: &Services, id: i64, eid: i64) -> UiResult<ExecutionSummary> {
    policies::get_execution(services.pool.get_ref(), eid)
        .await?
        .filter(|e| e.policy_id == id)
        .ok_or_else(|| UiError::not_found(format!("Policy {id} has no execution {eid}.")))
}

/// `POST /admin/replications/{id}/executions/{eid}/stop`.
pub(crate) async fn stop(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<(i64, i64)>,
    PostedForm(form): PostedForm<ActionForm>,
) -> HttpResponse {
    let (id, eid) = path.into_inner();
    let back = policy_url(id);
    let done = async {
        access::require_system(&viewer, EXECUTION, "create")?;
        execution_of(&services, id, eid).await?;
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!("Stop execution {eid}?"),
            &back,
        ) {
            return Ok(page);
        }
        let stopped = policies::stop_execution(services.pool.get_ref(), eid)
            .await?
            .unwrap_or(false);
        Ok(layout::see_other(
            &back,
            Some(&if stopped {
                format!("Execution {eid} is stopping.")
            } else {
                format!("Execution {eid} had already finished.")
            }),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("execution-{eid}")))
}

pub(crate) struct TaskRow {
    id: i64,
    source: String,
    destination: String,
    operation: String,
    resource_type: String,
    status: String,
    badge: &'static str,
    bytes: String,
    attempts: i32,
    error: String,
    started: String,
    finished: String,
}

impl From<Task> for TaskRow {
    fn from(t: Task) -> Self {
        TaskRow {
            id: t.id,
            badge: badge(&t.status),
            source: t.src_resource,
            destination: t.dst_resource,
            operation: t.operation,
            resource_type: t.resource_type,
            status: t.status,
            bytes: format::size(t.bytes_copied),
            attempts: t.attempts,
            error: t.error,
            started: format::maybe_time(t.started_at),
            finished: format::maybe_time(t.finished_at),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_replication_execution.html")]
struct ExecutionPage {
    chrome: Chrome,
    tab: &'static str,
    id: i64,
    policy: String,
    source: String,
    destination: String,
    e: ExecutionRow,
    tasks: Vec<TaskRow>,
    pager: Pager,
    can_stop: bool,
}

/// `GET /admin/replications/{id}/executions/{eid}`: the execution and its tasks.
pub(crate) async fn show_execution(
    services: Services,
    viewer: Viewer,
    path: web::Path<(i64, i64)>,
    query: web::Query<PageQuery>,
) -> UiResult<HttpResponse> {
    access::require_system(&viewer, EXECUTION, "read")?;
    let (id, eid) = path.into_inner();
    let policy = existing(&services, id).await?;
    let execution = execution_of(&services, id, eid).await?;
    let registries = services.registries()?.list().await?;
    let all = policies::list_tasks(services.pool.get_ref(), eid).await?;
    let page = query.page();
    let total = all.len() as i64;
    let size = page.page_size.max(1) as usize;
    let skip = (page.page.max(1) as usize - 1).saturating_mul(size);
    let tasks = all
        .into_iter()
        .skip(skip)
        .take(size)
        .map(TaskRow::from)
        .collect();
    Ok(layout::ok(&ExecutionPage {
        chrome: Chrome::new(&viewer, format!("Execution {eid}"), "admin"),
        tab: "replications",
        id,
        policy: policy.name.clone(),
        source: side_name(&registries, policy.src_registry_id),
        destination: side_name(&registries, policy.dest_registry_id),
        e: ExecutionRow::from(execution),
        tasks,
        pager: Pager::new(
            &format!("{}/executions/{eid}", policy_url(id)),
            &[],
            page,
            total,
        ),
        can_stop: viewer.principal().can_system(EXECUTION, "create"),
    }))
}

#[derive(Template)]
#[template(path = "admin_replication_task.html")]
struct TaskPage {
    chrome: Chrome,
    tab: &'static str,
    id: i64,
    policy: String,
    eid: i64,
    t: TaskRow,
    log: String,
}

/// `GET /admin/replications/{id}/executions/{eid}/tasks/{tid}`: a task and its log.
pub(crate) async fn show_task(
    services: Services,
    viewer: Viewer,
    path: web::Path<(i64, i64, i64)>,
) -> UiResult<HttpResponse> {
    access::require_system(&viewer, EXECUTION, "read")?;
    let (id, eid, tid) = path.into_inner();
    let policy = existing(&services, id).await?;
    execution_of(&services, id, eid).await?;
    let task = policies::get_task(services.pool.get_ref(), eid, tid)
        .await?
        .ok_or_else(|| UiError::not_found(format!("Execution {eid} has no task {tid}.")))?;
    let log = policies::task_log(&task);
    Ok(layout::ok(&TaskPage {
        chrome: Chrome::new(&viewer, format!("Task {tid}"), "admin"),
        tab: "replications",
        id,
        policy: policy.name,
        eid,
        t: TaskRow::from(task),
        log,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_reads_back_into_its_form() {
        let policy = Policy {
            id: 1,
            name: "to-mirror".into(),
            description: String::new(),
            src_registry_id: None,
            dest_registry_id: Some(4),
            dest_namespace: Some("mirror".into()),
            dest_namespace_replace_count: 1,
            name_filter: Some("library/**".into()),
            name_excludes: false,
            tag_filter: Some("v*".into()),
            tag_excludes: true,
            label_include: vec!["prod".into()],
            label_exclude: Vec::new(),
            resource_filter: None,
            trigger: PolicyTrigger::Scheduled("0 0 2 * * *".into()),
            override_tags: true,
            replicate_deletion: false,
            speed_kb: Some(512),
            copy_by_chunk: false,
            enabled: true,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        let form = PolicyFormValues::of(&policy);
        assert!(!form.pull);
        assert_eq!(form.registry_id, 4);
        assert_eq!(form.trigger, "scheduled");
        assert_eq!(form.cron, "0 0 2 * * *");
        assert_eq!(form.replace_count, 1);
        assert_eq!(
            filters_words(&policy),
            "name library/** · tag not v* · labels prod"
        );
        assert_eq!(spec_from(&policy).speed_kb, Some(512));
    }
}
