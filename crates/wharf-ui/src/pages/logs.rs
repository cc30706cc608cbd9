//! A project's audit log (the Logs tab), newest first.

use actix_web::{HttpResponse, web};
use askama::Template;
use wharf_projects::audit::{self, AuditLog, AuditQuery};

use crate::access::{self, ProjectNav};
use crate::error::UiResult;
use crate::format::{self, project_url};
use crate::layout::{self, Chrome};
use crate::paging::{PageQuery, Pager};
use crate::session::{Services, Viewer};

/// One audit entry as the log tables show it.
pub(crate) struct LogRow {
    pub time: String,
    pub username: String,
    pub operation: String,
    pub resource: String,
    pub resource_type: String,
    pub description: String,
    pub success: bool,
}

pub(crate) fn log_rows(items: Vec<AuditLog>) -> Vec<LogRow> {
    items
        .into_iter()
        .map(|e| LogRow {
            time: format::time(e.op_time),
            username: e.username,
            operation: e.operation,
            resource: e.resource,
            resource_type: e.resource_type,
            description: e.operation_description,
            success: e.operation_result,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "logs.html")]
struct LogsPage {
    chrome: Chrome,
    nav: ProjectNav,
    rows: Vec<LogRow>,
    pager: Pager,
}

/// `GET /projects/{project}/logs`.
pub(crate) async fn list(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> UiResult<HttpResponse> {
    let pool = services.pool.get_ref();
    let access = access::project(pool, &viewer, &path).await?;
    access::require(&access, "log", "list")?;
    let page = query.page();
    let listing = audit::list(
        pool,
        &AuditQuery {
            project_ids: Some(vec![access.project.id]),
            page,
            ..AuditQuery::default()
        },
    )
    .await?;
    let here = project_url(&access.project.name, "/logs");
    Ok(layout::ok(&LogsPage {
        chrome: Chrome::new(
            &viewer,
            format!("{} · Logs", access.project.name),
            "projects",
        ),
        nav: ProjectNav::new(&access, &viewer, "logs"),
        pager: Pager::new(&here, &[], page, listing.total),
        rows: log_rows(listing.items),
    }))
}
