//! Administration → Garbage collection: the schedule (set, clear), **Run
//! now** (optionally deleting untagged artifacts, optionally dry), stopping
//! a run, and the runs with their logs. Changes go through
//! [`wharf_projects::jobs::gc::change_gc`] and [`stop_gc`], the functions
//! `/system/gc` calls; access is the API's system `garbage-collection`
//! resource.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use wharf_jobs::ExecutionQuery;
use wharf_projects::Error;
use wharf_projects::jobs::gc::{
    GcActor, GcChange, GcParams, KIND, SCHEDULE_NAME, change_gc, stop_gc,
};

use super::{form_failed, ticked, unconfirmed};
use crate::access;
use crate::error::{UiError, UiResult};
use crate::format;
use crate::layout::{self, Chrome};
use crate::paging::{PageQuery, Pager};
use crate::session::{PostedForm, Services, Viewer};

const GC: &str = "/admin/gc";
const RESOURCE: &str = "garbage-collection";

/// What a run was asked to do, for people.
fn params_words(parameters: &serde_json::Value) -> String {
    let empty = serde_json::Map::new();
    match GcParams::from_parameters(parameters.as_object().unwrap_or(&empty)) {
        Ok(p) => {
            let mut words = vec![if p.dry_run { "dry run" } else { "real run" }];
            if p.delete_untagged {
                words.push("untagged artifacts included");
            }
            format!("{}, {} worker(s)", words.join(", "), p.workers)
        }
        Err(_) => "unreadable parameters".to_owned(),
    }
}

struct RunRow {
    id: i64,
    status: String,
    badge: &'static str,
    trigger: &'static str,
    what: String,
    created: String,
    finished: String,
    going: bool,
}

#[derive(Template)]
#[template(path = "admin_gc.html")]
struct GcPage {
    chrome: Chrome,
    tab: &'static str,
    cron: String,
    next_run: String,
    schedule_what: String,
    /// The schedule's options, to start its form from.
    schedule_untagged: bool,
    schedule_workers: u8,
    runs: Vec<RunRow>,
    pager: Pager,
    can_change: bool,
    can_stop: bool,
}

fn trigger_word(trigger: wharf_jobs::Trigger) -> &'static str {
    match trigger {
        wharf_jobs::Trigger::Manual => "manual",
        wharf_jobs::Trigger::Schedule => "schedule",
        wharf_jobs::Trigger::Event => "event",
    }
}

fn is_going(status: wharf_jobs::ExecutionStatus) -> bool {
    matches!(
        status,
        wharf_jobs::ExecutionStatus::Pending
            | wharf_jobs::ExecutionStatus::Running
            | wharf_jobs::ExecutionStatus::Stopping
    )
}

/// `GET /admin/gc`.
pub(crate) async fn show(
    services: Services,
    viewer: Viewer,
    query: web::Query<PageQuery>,
) -> UiResult<HttpResponse> {
    access::require_system(&viewer, RESOURCE, "list")?;
    access::require_system(&viewer, RESOURCE, "read")?;
    let pool = services.pool.get_ref();
    let schedule = wharf_jobs::get_schedule(pool, SCHEDULE_NAME).await?;
    let page = query.page();
    let mut q = ExecutionQuery::new(KIND);
    q.page = page.page;
    q.page_size = page.page_size;
    let (items, total) = wharf_jobs::list_executions(pool, &q).await?;
    let runs = items
        .into_iter()
        .map(|e| RunRow {
            id: e.id,
            status: e.status.as_str().to_owned(),
            badge: format::status_badge(e.status.as_str()),
            trigger: trigger_word(e.trigger),
            what: params_words(&e.parameters),
            created: format::time(e.created_at),
            finished: format::maybe_time(e.finished_at),
            going: is_going(e.status),
        })
        .collect();
    let principal = viewer.principal();
    let empty = serde_json::Map::new();
    let scheduled = schedule
        .as_ref()
        .and_then(|s| GcParams::from_parameters(s.payload.as_object().unwrap_or(&empty)).ok());
    Ok(layout::ok(&GcPage {
        chrome: Chrome::new(&viewer, "Garbage collection", "admin"),
        tab: "gc",
        cron: schedule
            .as_ref()
            .map(|s| s.cron.clone())
            .unwrap_or_default(),
        next_run: schedule
            .as_ref()
            .map(|s| format::time(s.next_run_at))
            .unwrap_or_default(),
        schedule_what: schedule
            .as_ref()
            .map(|s| params_words(&s.payload))
            .unwrap_or_default(),
        schedule_untagged: scheduled.is_some_and(|p| p.delete_untagged),
        schedule_workers: scheduled.map_or(1, |p| p.workers),
        runs,
        pager: Pager::new(GC, &[], page, total),
        can_change: principal.can_system(RESOURCE, "create")
            && principal.can_system(RESOURCE, "update"),
        can_stop: principal.can_system(RESOURCE, "stop"),
    }))
}

fn actor(viewer: &Viewer) -> GcActor<'_> {
    GcActor {
        username: viewer.principal().audit_name(),
        client_addr: viewer.caller.client_addr.as_deref(),
    }
}

/// The collection's options from a form's checkboxes and workers.
fn params_of(
    dry_run: &Option<String>,
    untagged: &Option<String>,
    workers: &Option<String>,
) -> UiResult<GcParams> {
    let mut fields = serde_json::Map::new();
    fields.insert("dry_run".into(), ticked(dry_run).into());
    fields.insert("delete_untagged".into(), ticked(untagged).into());
    if let Some(w) = workers.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
        fields.insert("workers".into(), w.into());
    }
    GcParams::from_parameters(&fields).map_err(UiError::BadRequest)
}

#[derive(Deserialize)]
pub(crate) struct ScheduleForm {
    cron: String,
    delete_untagged: Option<String>,
    workers: Option<String>,
}

/// `POST /admin/gc/schedule`: an empty cron removes the schedule.
pub(crate) async fn set_schedule(
    services: Services,
    viewer: Viewer,
    PostedForm(form): PostedForm<ScheduleForm>,
) -> HttpResponse {
    let done = async {
        access::require_system(&viewer, RESOURCE, "update")?;
        let params = params_of(&None, &form.delete_untagged, &form.workers)?;
        let cron = form.cron.split_whitespace().collect::<Vec<_>>().join(" ");
        let change = if cron.is_empty() {
            GcChange::Unschedule
        } else {
            wharf_jobs::validate_cron(&cron).map_err(|e| UiError::BadRequest(e.to_string()))?;
            GcChange::Schedule(cron)
        };
        change_gc(services.pool.get_ref(), actor(&viewer), &change, params).await?;
        Ok(layout::see_other(
            GC,
            Some(match change {
                GcChange::Unschedule => "Garbage collection schedule removed.",
                _ => "Garbage collection schedule saved.",
            }),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, GC, "gc-schedule"))
}

#[derive(Deserialize)]
pub(crate) struct RunForm {
    dry_run: Option<String>,
    delete_untagged: Option<String>,
    workers: Option<String>,
    confirm: Option<String>,
}

/// `POST /admin/gc/run`: a real run asks first (it deletes blobs, and
/// untagged artifacts if asked to); a dry one does not.
pub(crate) async fn run(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    PostedForm(form): PostedForm<RunForm>,
) -> HttpResponse {
    let done = async {
        access::require_system(&viewer, RESOURCE, "create")?;
        let params = params_of(&form.dry_run, &form.delete_untagged, &form.workers)?;
        if !params.dry_run
            && let Some(page) = unconfirmed(
                &req,
                &viewer,
                &form.confirm,
                if params.delete_untagged {
                    "Collect garbage now, deleting untagged artifacts too?"
                } else {
                    "Collect garbage now?"
                },
                GC,
            )
        {
            return Ok(page);
        }
        let id = match change_gc(
            services.pool.get_ref(),
            actor(&viewer),
            &GcChange::RunNow,
            params,
        )
        .await
        {
            Err(Error::Conflict(_)) => {
                return Err(UiError::BadRequest(
                    "A garbage collection is already waiting or running: stop it or wait for it to finish."
                        .into(),
                ));
            }
            other => other?,
        };
        let id = id.ok_or(UiError::Internal)?;
        Ok(layout::see_other(
            GC,
            Some(&format!(
                "Garbage collection {id} started{}.",
                if params.dry_run { " (dry run)" } else { "" }
            )),
        ))
    };
    done.await.unwrap_or_else(|e| form_failed(e, GC, "gc-run"))
}

#[derive(Deserialize)]
pub(crate) struct StopForm {
    confirm: Option<String>,
}

/// `POST /admin/gc/{id}/stop`.
pub(crate) async fn stop(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
    PostedForm(form): PostedForm<StopForm>,
) -> HttpResponse {
    let id = path.into_inner();
    let done = async {
        access::require_system(&viewer, RESOURCE, "stop")?;
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!("Stop garbage collection {id}?"),
            GC,
        ) {
            return Ok(page);
        }
        let stopped = match stop_gc(services.pool.get_ref(), actor(&viewer), id).await {
            Err(Error::NotFound) => {
                return Err(UiError::not_found(format!(
                    "There is no garbage collection {id}."
                )));
            }
            other => other?,
        };
        Ok(layout::see_other(
            GC,
            Some(&if stopped {
                format!("Garbage collection {id} is stopping.")
            } else {
                format!("Garbage collection {id} had already finished.")
            }),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, GC, &format!("gc-{id}")))
}

#[derive(Template)]
#[template(path = "admin_gc_run.html")]
struct RunPage {
    chrome: Chrome,
    tab: &'static str,
    id: i64,
    status: String,
    badge: &'static str,
    trigger: &'static str,
    what: String,
    created: String,
    finished: String,
    log: String,
}

/// `GET /admin/gc/{id}`: one run and its log.
pub(crate) async fn show_run(
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
) -> UiResult<HttpResponse> {
    access::require_system(&viewer, RESOURCE, "read")?;
    let id = path.into_inner();
    let pool = services.pool.get_ref();
    let missing = || UiError::not_found(format!("There is no garbage collection {id}."));
    let execution = wharf_jobs::get_execution(pool, id)
        .await?
        .filter(|e| e.kind == KIND)
        .ok_or_else(missing)?;
    let log = wharf_jobs::get_log(pool, id).await?.unwrap_or_default();
    Ok(layout::ok(&RunPage {
        chrome: Chrome::new(&viewer, format!("Garbage collection {id}"), "admin"),
        tab: "gc",
        id,
        status: execution.status.as_str().to_owned(),
        badge: format::status_badge(execution.status.as_str()),
        trigger: trigger_word(execution.trigger),
        what: params_words(&execution.parameters),
        created: format::time(execution.created_at),
        finished: format::maybe_time(execution.finished_at),
        log,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_options_become_harbor_parameters() {
        let p = params_of(&Some("yes".into()), &None, &Some("3".into())).unwrap();
        assert!(p.dry_run && !p.delete_untagged);
        assert_eq!(p.workers, 3);
        assert!(params_of(&None, &None, &Some("9".into())).is_err());
        assert_eq!(params_words(&p.to_parameters()), "dry run, 3 worker(s)");
    }
}
