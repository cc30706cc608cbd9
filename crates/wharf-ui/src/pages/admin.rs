//! Administration (system administrators only): users — create, reset a
//! password, grant or revoke system administration, delete — and the
//! system-wide audit log. The rules are the REST API's: nobody deletes
//! themselves or `admin`, nobody changes their own administrator flag.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use wharf_projects::audit::{self, AuditQuery};
use wharf_projects::{
    ADMIN, Error, NewUser, User, UserQuery, Username, create_user, delete_user, get_user,
    list_users, set_password, set_sysadmin,
};

use super::logs::{LogRow, log_rows};
use super::{form_failed, ticked, unconfirmed};
use crate::access::{self, audit_entry};
use crate::error::{UiError, UiResult};
use crate::format;
use crate::layout::{self, Chrome};
use crate::paging::{PageQuery, Pager};
use crate::session::{PostedForm, Services, Viewer};

const USERS: &str = "/admin/users";

struct UserRow {
    id: i64,
    username: String,
    email: String,
    realname: String,
    sysadmin: bool,
    created: String,
    /// The viewer itself or `admin`: not deletable, flag not changeable.
    protected: bool,
    is_self: bool,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    chrome: Chrome,
    tab: &'static str,
    rows: Vec<UserRow>,
    pager: Pager,
    q: String,
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    q: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

/// `GET /admin/users`.
pub(crate) async fn users(
    services: Services,
    viewer: Viewer,
    query: web::Query<ListQuery>,
) -> UiResult<HttpResponse> {
    viewer.require_sysadmin()?;
    let q = query.q.clone().unwrap_or_default().trim().to_owned();
    let page = query.page.page();
    let listing = list_users(
        services.pool.get_ref(),
        &UserQuery {
            username_contains: (!q.is_empty()).then(|| q.clone()),
            page,
        },
    )
    .await?;
    let rows = listing
        .items
        .into_iter()
        .map(|u: User| UserRow {
            protected: u.id == viewer.user.id || u.username == ADMIN,
            is_self: u.id == viewer.user.id,
            id: u.id,
            email: u.email.unwrap_or_default(),
            realname: u.realname,
            sysadmin: u.sysadmin,
            created: format::time(u.created_at),
            username: u.username,
        })
        .collect();
    Ok(layout::ok(&UsersPage {
        chrome: Chrome::new(&viewer, "Users", "admin"),
        tab: "users",
        rows,
        pager: Pager::new(USERS, &[("q", q.clone())], page, listing.total),
        q,
    }))
}

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    username: String,
    email: String,
    #[serde(default)]
    realname: String,
    password: String,
    sysadmin: Option<String>,
}

/// `POST /admin/users`.
pub(crate) async fn create(
    services: Services,
    viewer: Viewer,
    PostedForm(form): PostedForm<CreateForm>,
) -> HttpResponse {
    let done = async {
        access::require_system(&viewer, "user", "create")?;
        let username = Username::parse(form.username.trim())?;
        let email = form.email.trim();
        if email.is_empty() {
            return Err(UiError::BadRequest("An e-mail address is required.".into()));
        }
        let realname = match form.realname.trim() {
            "" => username.as_str().to_owned(),
            name => name.to_owned(),
        };
        let new = NewUser {
            username,
            email: Some(email),
            realname: &realname,
            comment: "",
            password: &form.password,
            sysadmin: ticked(&form.sysadmin),
        };
        let mut tx = services.pool.begin().await?;
        let user = create_user(&mut *tx, &new).await?;
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                None,
                "create",
                "user",
                &user.username,
                "created the user",
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            USERS,
            Some(&format!("User {} created.", user.username)),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, USERS, "create-user"))
}

async fn target_user(
    services: &Services,
    viewer: &Viewer,
    id: i64,
    action: &str,
) -> UiResult<User> {
    access::require_system(viewer, "user", action)?;
    match get_user(services.pool.get_ref(), id).await {
        Ok(user) => Ok(user),
        Err(Error::NotFound) => Err(UiError::not_found("That user is gone.")),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    password: String,
}

/// `POST /admin/users/{id}/password`.
pub(crate) async fn reset_password(
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
    PostedForm(form): PostedForm<PasswordForm>,
) -> HttpResponse {
    let id = path.into_inner();
    let done = async {
        let user = target_user(&services, &viewer, id, "update").await?;
        let mut tx = services.pool.begin().await?;
        set_password(&mut *tx, id, &form.password).await?;
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                None,
                "update",
                "user",
                &user.username,
                "reset the password",
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            USERS,
            Some(&format!("The password of {} was reset.", user.username)),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, USERS, &format!("user-{id}")))
}

#[derive(Deserialize)]
pub(crate) struct FlagForm {
    sysadmin: String,
    confirm: Option<String>,
}

/// `POST /admin/users/{id}/sysadmin`: `sysadmin=true|false`.
pub(crate) async fn set_admin(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
    PostedForm(form): PostedForm<FlagForm>,
) -> HttpResponse {
    let id = path.into_inner();
    let done = async {
        let user = target_user(&services, &viewer, id, "update").await?;
        if user.id == viewer.user.id {
            return Err(UiError::Forbidden(
                "You cannot change your own administrator flag.".into(),
            ));
        }
        let grant = form.sysadmin == "true";
        if !grant
            && let Some(page) = unconfirmed(
                &req,
                &viewer,
                &form.confirm,
                &format!("Revoke system administration from {}?", user.username),
                USERS,
            )
        {
            return Ok(page);
        }
        let description = if grant {
            "granted system administration"
        } else {
            "revoked system administration"
        };
        let mut tx = services.pool.begin().await?;
        set_sysadmin(&mut *tx, id, grant).await?;
        audit::record(
            &mut *tx,
            &audit_entry(&viewer, None, "update", "user", &user.username, description),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            USERS,
            Some(&format!("{}: {description}.", user.username)),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, USERS, &format!("user-{id}")))
}

#[derive(Deserialize)]
pub(crate) struct DeleteForm {
    confirm: Option<String>,
}

/// `POST /admin/users/{id}/delete`.
pub(crate) async fn delete(
    req: HttpRequest,
    services: Services,
    viewer: Viewer,
    path: web::Path<i64>,
    PostedForm(form): PostedForm<DeleteForm>,
) -> HttpResponse {
    let id = path.into_inner();
    let done = async {
        let user = target_user(&services, &viewer, id, "delete").await?;
        if user.id == viewer.user.id || user.username == ADMIN {
            return Err(UiError::Forbidden(format!(
                "The user {} cannot be deleted.",
                user.username
            )));
        }
        if let Some(page) = unconfirmed(
            &req,
            &viewer,
            &form.confirm,
            &format!(
                "Delete the user {}? Their project memberships go with them.",
                user.username
            ),
            USERS,
        ) {
            return Ok(page);
        }
        let mut tx = services.pool.begin().await?;
        delete_user(&mut *tx, id).await?;
        audit::record(
            &mut *tx,
            &audit_entry(
                &viewer,
                None,
                "delete",
                "user",
                &user.username,
                "deleted the user",
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(layout::see_other(
            USERS,
            Some(&format!("User {} deleted.", user.username)),
        ))
    };
    done.await
        .unwrap_or_else(|e| form_failed(e, USERS, &format!("user-{id}")))
}

#[derive(Template)]
#[template(path = "admin_logs.html")]
struct AuditPage {
    chrome: Chrome,
    tab: &'static str,
    rows: Vec<LogRow>,
    pager: Pager,
}

/// `GET /admin/logs`: every audit entry, system ones included.
pub(crate) async fn logs(
    services: Services,
    viewer: Viewer,
    query: web::Query<PageQuery>,
) -> UiResult<HttpResponse> {
    access::require_system(&viewer, "audit-log", "list")?;
    let page = query.page();
    let listing = audit::list(
        services.pool.get_ref(),
        &AuditQuery {
            page,
            ..AuditQuery::default()
        },
    )
    .await?;
    Ok(layout::ok(&AuditPage {
        chrome: Chrome::new(&viewer, "Audit log", "admin"),
        tab: "logs",
        pager: Pager::new("/admin/logs", &[], page, listing.total),
        rows: log_rows(listing.items),
    }))
}
