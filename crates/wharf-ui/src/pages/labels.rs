//! A project's Labels tab: its labels, create and delete (the API's
//! `label` permissions in the project).

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use wharf_projects::labels::{
    LabelQuery, LabelScope, LabelText, create_label, delete_label, get_label, list_labels,
};
use wharf_projects::{Error, audit};

use super::{form_failed, unconfirmed};
use crate::access::{self, ProjectNav, audit_entry};
use crate::error::{UiError, UiResult};
use crate::format::{self, project_url};
use crate::layout::{self, Chrome};
use crate::paging::{PageQuery, Pager};
use crate::session::{PostedForm, Services, Viewer};

struct LabelRow {
    id: i64,
    name: String,
    description: String,
    color: String,
    created: String,
}

#[derive(Template)]
#[template(path = "labels.html")]
struct LabelsPage {
    chrome: Chrome,
    nav: ProjectNav,
    rows: Vec<LabelRow>,
    pager: Pager,
    can_create: bool,
    can_delete: bool,
}

/// `GET /projects/{project}/labels`.
pub(crate) async fn list(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> UiResult<HttpResponse> {
    let pool = services.pool.get_ref();
    let access = access::project(pool, &viewer, &path).await?;
    access::require(&access, "label", "list")?;
    let page = query.page();
    let listing = list_labels(
        pool,
        &LabelQuery {
            page,
            ..LabelQuery::new(LabelScope::Project(access.project.id))
        },
    )
    .await?;
    let rows = listing
        .items
        .into_iter()
        .map(|l| LabelRow {
            id: l.id,
            name: l.name,
            description: l.description,
            color: l.color,
            created: format::time(l.created_at),
        })
        .collect();
    let here = project_url(&access.project.name, "/labels");
    Ok(layout::ok(&LabelsPage {
        chrome: Chrome::new(
            &viewer,
            format!("{} · Labels", access.project.name),
            "projects",
        ),
        nav: ProjectNav::new(&access, &viewer, "labels"),
        rows,
        pager: Pager::new(&here, &[], page, listing.total),
        can_create: access.allows("label", "create"),
        can_delete: access.allows("label", "delete"),
    }))
}

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    color: String,
}

/// `POST /projects/{project}/labels`.
pub(crate) async fn create(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    PostedForm(form): PostedForm<CreateForm>,
) -> HttpResponse {
    let back = project_url(&path, "/labels");
    let done = async {
        let access = access::project(services.pool.get_ref(), &viewer, &path).await?;
        access::require(&access, "label", "create")?;
        let text = LabelText {
            name: form.name.trim().to_owned(),
            description: form.description.trim().to_owned(),
            color: form.color.trim().to_owned(),
        };
        let mut tx = services.pool.begin().await?;
        let label =
            match create_label(&mut *tx, &text, LabelScope::Project(access.project.id)).await {
                Err(Error::Conflict(_)) => {
                    return Err(UiError::BadRequest(format!(
                        "The project already has a label {}.",
                        text.name
                    )));
                }
                other => other?,
            };
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                Some(access.project.id),
                "create",
                "label",
                &label.name,
                "created the label",
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            &back,
            Some(&format!("Label {} created.", label.name)),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, "create-label"))
}

#[derive(Deserialize)]
pub(crate) struct DeleteForm {
    confirm: Option<String>,
}

/// `POST /projects/{project}/labels/{id}/delete`: detached from every artifact.
pub(crate) async fn delete(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<(String, i64)>,
    PostedForm(form): PostedForm<DeleteForm>,
) -> HttpResponse {
    let (project, id) = path.into_inner();
    let back = project_url(&project, "/labels");
    let done = async {
        let pool = services.pool.get_ref();
        let access = access::project(pool, &viewer, &project).await?;
        access::require(&access, "label", "delete")?;
        let label = match get_label(pool, id).await {
            Ok(label) if label.scope == LabelScope::Project(access.project.id) => label,
            Ok(_) | Err(Error::NotFound) => return Err(UiError::not_found("That label is gone.")),
            Err(e) => return Err(e.into()),
        };
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!(
                "Delete the label {}? It is removed from every artifact.",
                label.name
            ),
            &back,
        ) {
            return Ok(page);
        }
        let mut tx = services.pool.begin().await?;
        let deleted = delete_label(&mut *tx, id).await?;
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                Some(access.project.id),
                "delete",
                "label",
                &label.name,
                "deleted the label",
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            &back,
            Some(&format!(
                "Label {} deleted (it was on {} artifacts).",
                label.name, deleted.detached
            )),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("label-{id}")))
}
