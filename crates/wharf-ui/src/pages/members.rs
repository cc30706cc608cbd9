//! A project's members: list, add a user with a role, change a role, remove.
//! The edit controls appear only for viewers whose role allows the change;
//! the handlers check again, with the API's rules (nobody but a system
//! administrator changes or removes their own membership).

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use wharf_projects::members::{
    MemberQuery, remove_member_by_id, search_members, update_member_role_by_id,
};
use wharf_projects::{Error, Role, add_member, audit, get_member, get_user_by_name};

use super::{form_failed, unconfirmed};
use crate::access::{self, ProjectNav, audit_entry, role_label};
use crate::error::{UiError, UiResult};
use crate::format::{self, project_url};
use crate::layout::{self, Chrome};
use crate::paging::{PageQuery, Pager};
use crate::session::{PostedForm, Services, Viewer};

struct MemberRow {
    id: i64,
    username: String,
    role: Role,
    role_label: &'static str,
    since: String,
    /// Whether the viewer may change or remove this membership.
    editable: bool,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    chrome: Chrome,
    nav: ProjectNav,
    rows: Vec<MemberRow>,
    pager: Pager,
    q: String,
    can_add: bool,
    can_update: bool,
    can_remove: bool,
    roles: Vec<(i16, &'static str)>,
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    q: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

fn roles() -> Vec<(i16, &'static str)> {
    Role::ALL
        .into_iter()
        .map(|r| (r.id(), role_label(r)))
        .collect()
}

/// `GET /projects/{project}/members`.
pub(crate) async fn list(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> UiResult<HttpResponse> {
    let pool = services.pool.get_ref();
    let access = access::project(pool, &viewer, &path).await?;
    access::require(&access, "member", "list")?;
    let q = query.q.clone().unwrap_or_default().trim().to_owned();
    let page = query.page.page();
    let listing = search_members(
        pool,
        access.project.id,
        &MemberQuery {
            entity_name_contains: (!q.is_empty()).then(|| q.clone()),
            page,
        },
    )
    .await?;
    let can_update = access.allows("member", "update");
    let can_remove = access.allows("member", "delete");
    let rows = listing
        .items
        .into_iter()
        .map(|m| MemberRow {
            editable: viewer.user.sysadmin || m.user_id != viewer.user.id,
            id: m.id,
            role_label: role_label(m.role),
            role: m.role,
            since: format::time(m.created_at),
            username: m.username,
        })
        .collect();
    let here = project_url(&access.project.name, "/members");
    Ok(layout::ok(&MembersPage {
        chrome: Chrome::new(
            &viewer,
            format!("{} · Members", access.project.name),
            "projects",
        ),
        nav: ProjectNav::new(&access, &viewer, "members"),
        rows,
        pager: Pager::new(&here, &[("q", q.clone())], page, listing.total),
        q,
        can_add: access.allows("member", "create"),
        can_update,
        can_remove,
        roles: roles(),
    }))
}

#[derive(Deserialize)]
pub(crate) struct AddForm {
    username: String,
    role: i16,
}

fn role_of(id: i16) -> UiResult<Role> {
    Role::from_id(id).ok_or_else(|| UiError::BadRequest(format!("There is no role {id}.")))
}

/// `POST /projects/{project}/members`.
pub(crate) async fn add(
    services: Services,
    viewer: Viewer,
    path: web::Path<String>,
    PostedForm(form): PostedForm<AddForm>,
) -> HttpResponse {
    let back = project_url(&path, "/members");
    let done = async {
        let pool = services.pool.get_ref();
        let access = access::project(pool, &viewer, &path).await?;
        access::require(&access, "member", "create")?;
        let role = role_of(form.role)?;
        let username = form.username.trim();
        let user = match get_user_by_name(pool, username).await {
            Ok(user) => user,
            Err(Error::NotFound) => {
                return Err(UiError::BadRequest(format!("There is no user {username}.")));
            }
            Err(e) => return Err(e.into()),
        };
        let project = &access.project;
        let mut tx = services.pool.begin().await?;
        match add_member(&mut *tx, project.id, user.id, role).await {
            Err(Error::Conflict(_)) => {
                return Err(UiError::BadRequest(format!(
                    "{} is already a member of {}.",
                    user.username, project.name
                )));
            }
            other => other?,
        };
        let description = format!(
            "added {} to project {} as {role}",
            user.username, project.name
        );
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                Some(project.id),
                "create",
                "member",
                &user.username,
                &description,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            &back,
            Some(&format!(
                "{} is now {} of {}.",
                user.username,
                role_label(role),
                project.name
            )),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, "add-member"))
}

/// The membership `mid` of the path's project, which the viewer may `action`.
async fn editable_member(
    services: &Services,
    viewer: &Viewer,
    project: &str,
    mid: i64,
    action: &str,
) -> UiResult<(wharf_projects::ProjectAccess, wharf_projects::Member)> {
    let pool = services.pool.get_ref();
    let access = access::project(pool, viewer, project).await?;
    access::require(&access, "member", action)?;
    let member = match get_member(pool, access.project.id, mid).await {
        Ok(member) => member,
        Err(Error::NotFound) => return Err(UiError::not_found("That membership is gone.")),
        Err(e) => return Err(e.into()),
    };
    if member.user_id == viewer.user.id && !viewer.user.sysadmin {
        return Err(UiError::Forbidden(
            "You cannot change or remove your own membership.".into(),
        ));
    }
    Ok((access, member))
}

#[derive(Deserialize)]
pub(crate) struct RoleForm {
    role: i16,
}

/// `POST /projects/{project}/members/{mid}/role`.
pub(crate) async fn change_role(
    services: Services,
    viewer: Viewer,
    path: web::Path<(String, i64)>,
    PostedForm(form): PostedForm<RoleForm>,
) -> HttpResponse {
    let (project, mid) = path.into_inner();
    let back = project_url(&project, "/members");
    let done = async {
        let (access, member) = editable_member(&services, &viewer, &project, mid, "update").await?;
        let role = role_of(form.role)?;
        let mut tx = services.pool.begin().await?;
        update_member_role_by_id(&mut *tx, access.project.id, mid, role).await?;
        let description = format!(
            "changed the role of {} in project {} from {} to {role}",
            member.username, access.project.name, member.role
        );
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                Some(access.project.id),
                "update",
                "member",
                &member.username,
                &description,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            &back,
            Some(&format!("{} is now {}.", member.username, role_label(role))),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("member-{mid}")))
}

#[derive(Deserialize)]
pub(crate) struct RemoveForm {
    confirm: Option<String>,
}

/// `POST /projects/{project}/members/{mid}/delete`.
pub(crate) async fn remove(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<(String, i64)>,
    PostedForm(form): PostedForm<RemoveForm>,
) -> HttpResponse {
    let (project, mid) = path.into_inner();
    let back = project_url(&project, "/members");
    let done = async {
        let (access, member) = editable_member(&services, &viewer, &project, mid, "delete").await?;
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!("Remove {} from {}?", member.username, access.project.name),
            &back,
        ) {
            return Ok(page);
        }
        let mut tx = services.pool.begin().await?;
        remove_member_by_id(&mut *tx, access.project.id, mid).await?;
        let description = format!(
            "removed {} ({}) from project {}",
            member.username, member.role, access.project.name
        );
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                Some(access.project.id),
                "delete",
                "member",
                &member.username,
                &description,
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            &back,
            Some(&format!("{} was removed.", member.username)),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, &back, &format!("member-{mid}")))
}
