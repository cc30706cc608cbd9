//! `/users`: local accounts, as Harbor's `user` API.
//!
//! Who may do what follows Harbor's handler (`src/server/v2.0/handler/user.go`):
//! listing, creating and deleting users and toggling the admin flag need the
//! system `user` permission (system administrators, or robots granted it);
//! anyone signed in may read and edit their own profile and password and
//! search users by name. Two guards Harbor has are kept: nobody deletes
//! themselves or `admin`; and one is added: nobody changes their own admin
//! flag, so the last administrator cannot demote themselves by accident.
//!
//! `GET /users/current` answers for users only; a robot gets 412, as in
//! Harbor, because it has no profile.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::created_at;
use super::error::{ErrorsBody, resource};
use super::query::{Query, parse_sort, text_filter};
use super::{ApiError, ApiResult, PageParams, paginated, require_authenticated, require_system};
use crate::audit::{self, AuditEntry};
use crate::error::Error;
use crate::names::{Username, validate_email};
use crate::password;
use crate::roles::POLICIES;
use crate::security::{Caller, Principal, ProjectAccess};
use crate::users::{
    ADMIN, NewUser, TextMatch, User, UserProfile as DomainProfile, UserSearch, UserSort,
    authenticate, create_user, delete_user, get_user, password_matches, search_users, set_password,
    set_sysadmin, update_profile,
};

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_users,
        create_user_handler,
        current_user,
        current_permissions,
        search_users_handler,
        get_user_handler,
        update_user,
        delete_user_handler,
        update_password,
        update_sysadmin
    ),
    components(schemas(
        UserResp,
        UserCreationReq,
        UserProfile,
        PasswordReq,
        UserSysAdminFlag,
        UserSearchRespItem,
        Permission
    ))
)]
pub struct Doc;

/// Mount this module's routes. The fixed paths come before `{user_id}` so
/// `current` and `search` are not taken for ids.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/users")
            .route(web::get().to(list_users))
            .route(web::post().to(create_user_handler)),
    )
    .service(resource("/users/current").route(web::get().to(current_user)))
    .service(resource("/users/current/permissions").route(web::get().to(current_permissions)))
    .service(resource("/users/search").route(web::get().to(search_users_handler)))
    .service(
        resource("/users/{user_id}")
            .route(web::get().to(get_user_handler))
            .route(web::put().to(update_user))
            .route(web::delete().to(delete_user_handler)),
    )
    .service(resource("/users/{user_id}/password").route(web::put().to(update_password)))
    .service(resource("/users/{user_id}/sysadmin").route(web::put().to(update_sysadmin)));
}

// ---------------------------------------------------------------------------
// Shapes.

/// A user as Harbor shows it (never with a password).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserResp {
    pub user_id: i64,
    pub username: String,
    pub email: String,
    pub realname: String,
    pub comment: String,
    pub sysadmin_flag: bool,
    /// Whether the admin role comes from an external authenticator (LDAP);
    /// always false for local users.
    pub admin_role_in_auth: bool,
    pub creation_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl From<User> for UserResp {
    fn from(user: User) -> Self {
        UserResp {
            user_id: user.id,
            username: user.username,
            email: user.email.unwrap_or_default(),
            realname: user.realname,
            comment: user.comment,
            sysadmin_flag: user.sysadmin,
            admin_role_in_auth: false,
            creation_time: user.created_at,
            update_time: user.updated_at,
        }
    }
}

/// What `POST /users` takes.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct UserCreationReq {
    pub username: String,
    pub email: String,
    pub realname: String,
    pub comment: String,
    pub password: String,
}

/// The editable profile fields (`PUT /users/{user_id}`).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct UserProfile {
    pub email: String,
    pub realname: String,
    pub comment: String,
}

/// A password change; `old_password` is required when changing your own.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct PasswordReq {
    pub old_password: String,
    pub new_password: String,
}

/// The system administrator flag.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserSysAdminFlag {
    pub sysadmin_flag: bool,
}

/// One hit of `GET /users/search`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserSearchRespItem {
    pub user_id: i64,
    pub username: String,
}

/// One permission of the current user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Permission {
    pub resource: String,
    pub action: String,
}

/// Query of `GET /users`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersParams {
    /// Harbor's query: `username` and `email`, exact (`k=v`) or fuzzy (`k=~v`).
    pub q: Option<String>,
    /// `user_id`, `username`, `email`, `creation_time`, `update_time`; `-` for descending.
    pub sort: Option<String>,
    /// Fuzzy username filter (as Harbor's handler accepts).
    pub username: Option<String>,
    /// Fuzzy e-mail filter (as Harbor's handler accepts).
    pub email: Option<String>,
}

/// Query of `GET /users/search`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchUsersParams {
    /// Part of the username to look for (required).
    pub username: Option<String>,
}

/// Query of `GET /users/current/permissions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PermissionsParams {
    /// `/system` or `/project/{project_id}`.
    pub scope: Option<String>,
    /// Give resources relative to the scope (`repository` rather than
    /// `/project/1/repository`; `.` for the project itself).
    pub relative: Option<bool>,
}

// ---------------------------------------------------------------------------
// Rules.

/// Harbor's profile rules (`validateUserProfile`): an e-mail address is
/// required, the display name is 1–255 characters without `,~#$%`, the
/// comment at most 30 characters.
fn check_profile(email: &str, realname: &str, comment: &str) -> ApiResult<()> {
    if email.is_empty() {
        return Err(ApiError::bad_request("email can't be empty"));
    }
    validate_email(email)?;
    let len = realname.chars().count();
    if !(1..=255).contains(&len) {
        return Err(ApiError::bad_request(
            "realname must be 1 to 255 characters long",
        ));
    }
    if realname.chars().any(|c| ",~#$%".contains(c)) {
        return Err(ApiError::bad_request(
            "realname must not contain any of , ~ # $ %",
        ));
    }
    if comment.chars().count() > 30 {
        return Err(ApiError::bad_request(
            "comment must be at most 30 characters long",
        ));
    }
    Ok(())
}

/// The id of the caller when it is a local user.
fn caller_user_id(caller: &Caller) -> Option<i64> {
    caller.principal.user().map(|u| u.id)
}

async fn load_user(pool: &PgPool, id: i64) -> ApiResult<User> {
    match get_user(pool, id).await {
        Ok(user) => Ok(user),
        Err(Error::NotFound) => Err(ApiError::not_found(format!("user {id} not found"))),
        Err(e) => Err(e.into()),
    }
}

/// Self, or someone holding the system `user` permission for `action`.
fn require_self_or(caller: &Caller, id: i64, action: &str) -> ApiResult<()> {
    require_authenticated(caller)?;
    if caller_user_id(caller) == Some(id) || caller.principal.can_system("user", action) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "not allowed to {action} user {id}"
        )))
    }
}

fn entry<'a>(
    caller: &'a Caller,
    operation: &'a str,
    resource: &'a str,
    description: &'a str,
) -> AuditEntry<'a> {
    AuditEntry {
        project_id: None,
        username: caller.principal.audit_name(),
        operation,
        description,
        success: true,
        resource_type: "user",
        resource,
        client_addr: caller.client_addr.as_deref(),
    }
}

// ---------------------------------------------------------------------------
// Handlers.

/// List users (system administrators).
#[utoipa::path(
    get, path = "/users", tag = "user", operation_id = "listUsers",
    params(
        ListUsersParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of users; X-Total-Count and Link headers", body = [UserResp]),
        (status = 400, description = "Bad query", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn list_users(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    params: web::Query<ListUsersParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, "user", "list")?;
    let page = paging.page()?;
    let query = Query::parse(params.q.as_deref(), &["username", "email"])?;
    let fuzzy = |v: &Option<String>| {
        v.as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| TextMatch::Contains(v.to_owned()))
    };
    let search = UserSearch {
        username: text_filter(&query, "username")?.or_else(|| fuzzy(&params.username)),
        email: text_filter(&query, "email")?.or_else(|| fuzzy(&params.email)),
        sort: parse_sort(
            params.sort.as_deref(),
            &[
                ("user_id", UserSort::Id),
                ("username", UserSort::Username),
                ("email", UserSort::Email),
                ("creation_time", UserSort::CreationTime),
                ("update_time", UserSort::UpdateTime),
            ],
        )?,
        page,
    };
    let listing = search_users(pool.get_ref(), &search).await?;
    Ok(paginated(&req, listing, page, UserResp::from))
}

/// Create a local user (system administrators).
#[utoipa::path(
    post, path = "/users", tag = "user", operation_id = "createUser",
    request_body = UserCreationReq,
    responses(
        (status = 201, description = "Created; Location is /api/v2.0/users/{user_id}"),
        (status = 400, description = "Bad name, e-mail, profile or password", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not a system administrator", body = ErrorsBody),
        (status = 409, description = "Username or e-mail address taken", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn create_user_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    body: web::Json<UserCreationReq>,
) -> ApiResult<HttpResponse> {
    require_system(&caller, "user", "create")?;
    let body = body.into_inner();
    let username = Username::parse(&body.username)?;
    password::check_policy(&body.password)?;
    check_profile(&body.email, &body.realname, &body.comment)?;
    let new = NewUser {
        username,
        email: Some(&body.email),
        realname: &body.realname,
        comment: &body.comment,
        password: &body.password,
        sysadmin: false,
    };
    let mut tx = pool.begin().await?;
    let user = create_user(&mut *tx, &new).await?;
    audit::record(
        &mut *tx,
        &entry(&caller, "create", &user.username, "created the user"),
    )
    .await?;
    tx.commit().await?;
    Ok(created_at(&req, user.id))
}

/// The signed-in user's profile (users only; robots get 412).
#[utoipa::path(
    get, path = "/users/current", tag = "user", operation_id = "getCurrentUserInfo",
    responses(
        (status = 200, description = "The caller's profile", body = UserResp),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 412, description = "The caller is not a user (a robot)", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn current_user(caller: Caller, pool: web::Data<PgPool>) -> ApiResult<HttpResponse> {
    require_authenticated(&caller)?;
    let Some(id) = caller_user_id(&caller) else {
        return Err(ApiError::precondition(
            "the current user is only available to users, not robot accounts",
        ));
    };
    let user = load_user(&pool, id).await?;
    Ok(HttpResponse::Ok().json(UserResp::from(user)))
}

/// Harbor's system-level policies (`src/common/rbac/system/policies.go`).
const SYSTEM_POLICIES: &[(&str, &str)] = &[
    ("catalog", "read"),
    ("audit-log", "list"),
    ("project", "create"),
    ("project", "read"),
    ("project", "update"),
    ("project", "delete"),
    ("project", "list"),
    ("user", "create"),
    ("user", "read"),
    ("user", "update"),
    ("user", "delete"),
    ("user", "list"),
    ("user-group", "create"),
    ("user-group", "read"),
    ("user-group", "update"),
    ("user-group", "delete"),
    ("user-group", "list"),
    ("registry", "create"),
    ("registry", "read"),
    ("registry", "update"),
    ("registry", "delete"),
    ("registry", "list"),
    ("replication", "create"),
    ("replication", "read"),
    ("replication", "update"),
    ("replication", "list"),
    ("replication", "delete"),
    ("distribution", "create"),
    ("distribution", "read"),
    ("distribution", "update"),
    ("distribution", "delete"),
    ("distribution", "list"),
    ("garbage-collection", "create"),
    ("garbage-collection", "read"),
    ("garbage-collection", "update"),
    ("garbage-collection", "delete"),
    ("garbage-collection", "list"),
    ("scan-all", "create"),
    ("scan-all", "read"),
    ("scan-all", "update"),
    ("scan-all", "delete"),
    ("scan-all", "list"),
    ("system-volumes", "read"),
    ("ldap-user", "create"),
    ("ldap-user", "list"),
    ("configuration", "read"),
    ("configuration", "update"),
];

/// What the signed-in caller may do in a scope (`/system` or
/// `/project/{id}`), for the console to show only what works. An unknown
/// scope, or a project the caller may not see, gives an empty list.
#[utoipa::path(
    get, path = "/users/current/permissions", tag = "user",
    operation_id = "getCurrentUserPermissions",
    params(PermissionsParams),
    responses(
        (status = 200, description = "The permissions held in the scope", body = [Permission]),
        (status = 401, description = "Not signed in", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn current_permissions(
    caller: Caller,
    pool: web::Data<PgPool>,
    params: web::Query<PermissionsParams>,
) -> ApiResult<HttpResponse> {
    require_authenticated(&caller)?;
    let scope = params.scope.as_deref().unwrap_or("").trim_end_matches('/');
    let relative = params.relative.unwrap_or(false);
    let mut out = Vec::new();
    if scope == "/system" {
        for &(resource, action) in SYSTEM_POLICIES {
            if caller.principal.can_system(resource, action) {
                out.push(Permission {
                    resource: if relative {
                        resource.to_owned()
                    } else {
                        format!("/system/{resource}")
                    },
                    action: action.to_owned(),
                });
            }
        }
    } else if let Some(id) = scope
        .strip_prefix("/project/")
        .and_then(|id| id.parse::<i64>().ok())
        && let Some(access) = visible_project(&pool, &caller.principal, id).await?
    {
        let mut seen = std::collections::BTreeSet::new();
        for &(_, resource, action) in POLICIES {
            if !seen.insert((resource, action)) || !access.allows(resource, action) {
                continue;
            }
            let resource = match (relative, resource.is_empty()) {
                (true, true) => ".".to_owned(),
                (true, false) => resource.to_owned(),
                (false, true) => scope.to_owned(),
                (false, false) => format!("{scope}/{resource}"),
            };
            out.push(Permission {
                resource,
                action: action.to_owned(),
            });
        }
    }
    Ok(HttpResponse::Ok().json(out))
}

async fn visible_project(
    pool: &PgPool,
    principal: &Principal,
    id: i64,
) -> ApiResult<Option<ProjectAccess>> {
    let project = match crate::projects::get_project(pool, id).await {
        Ok(project) => project,
        Err(Error::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let access = ProjectAccess::load(pool, principal, project).await?;
    Ok(access.can_see().then_some(access))
}

/// Search users by part of their name (anyone signed in), for adding members.
#[utoipa::path(
    get, path = "/users/search", tag = "user", operation_id = "searchUsers",
    params(
        SearchUsersParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "Matching users; X-Total-Count and Link headers", body = [UserSearchRespItem]),
        (status = 400, description = "No username given", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn search_users_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    params: web::Query<SearchUsersParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    require_authenticated(&caller)?;
    let page = paging.page()?;
    let Some(username) = params.username.as_deref().filter(|u| !u.is_empty()) else {
        return Err(ApiError::bad_request("the username parameter is required"));
    };
    let search = UserSearch {
        username: Some(TextMatch::Contains(username.to_owned())),
        page,
        ..UserSearch::default()
    };
    let listing = search_users(pool.get_ref(), &search).await?;
    Ok(paginated(&req, listing, page, |u| UserSearchRespItem {
        user_id: u.id,
        username: u.username,
    }))
}

/// A user's profile (the user themselves or a system administrator).
#[utoipa::path(
    get, path = "/users/{user_id}", tag = "user", operation_id = "getUser",
    params(("user_id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "The profile", body = UserResp),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Someone else's profile", body = ErrorsBody),
        (status = 404, description = "No such user", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn get_user_handler(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    require_self_or(&caller, id, "read")?;
    let user = load_user(&pool, id).await?;
    Ok(HttpResponse::Ok().json(UserResp::from(user)))
}

/// Update e-mail address, display name and comment (self or administrator).
#[utoipa::path(
    put, path = "/users/{user_id}", tag = "user", operation_id = "updateUserProfile",
    params(("user_id" = i64, Path, description = "User id")),
    request_body = UserProfile,
    responses(
        (status = 200, description = "Updated"),
        (status = 400, description = "Bad profile", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Someone else's profile", body = ErrorsBody),
        (status = 404, description = "No such user", body = ErrorsBody),
        (status = 409, description = "E-mail address taken", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn update_user(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
    body: web::Json<UserProfile>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    require_self_or(&caller, id, "update")?;
    check_profile(&body.email, &body.realname, &body.comment)?;
    let profile = DomainProfile {
        email: Some(&body.email),
        realname: &body.realname,
        comment: &body.comment,
    };
    let mut tx = pool.begin().await?;
    let user = match update_profile(&mut *tx, id, &profile).await {
        Err(Error::NotFound) => return Err(ApiError::not_found(format!("user {id} not found"))),
        other => other?,
    };
    audit::record(
        &mut *tx,
        &entry(&caller, "update", &user.username, "updated the profile"),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

/// Delete a user (system administrators; not yourself, not `admin`).
#[utoipa::path(
    delete, path = "/users/{user_id}", tag = "user", operation_id = "deleteUser",
    params(("user_id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "Deleted"),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not an administrator, or yourself, or admin", body = ErrorsBody),
        (status = 404, description = "No such user", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn delete_user_handler(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    require_system(&caller, "user", "delete")?;
    let user = load_user(&pool, id).await?;
    if caller_user_id(&caller) == Some(id) || user.username == ADMIN {
        return Err(ApiError::forbidden(format!(
            "user {} cannot be deleted",
            user.username
        )));
    }
    let mut tx = pool.begin().await?;
    delete_user(&mut *tx, id).await?;
    audit::record(
        &mut *tx,
        &entry(&caller, "delete", &user.username, "deleted the user"),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

/// Change a password. Your own needs the current one; a system
/// administrator resetting someone else's does not.
#[utoipa::path(
    put, path = "/users/{user_id}/password", tag = "user", operation_id = "updateUserPassword",
    params(("user_id" = i64, Path, description = "User id")),
    request_body = PasswordReq,
    responses(
        (status = 200, description = "Changed"),
        (status = 400, description = "The new password breaks the policy or equals the old one", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Someone else's password, or the old password is wrong", body = ErrorsBody),
        (status = 404, description = "No such user", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn update_password(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
    body: web::Json<PasswordReq>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    require_self_or(&caller, id, "update")?;
    let user = load_user(&pool, id).await?;
    if caller_user_id(&caller) == Some(id)
        && authenticate(pool.get_ref(), &user.username, &body.old_password)
            .await?
            .is_none()
    {
        return Err(ApiError::forbidden("the current password is incorrect"));
    }
    password::check_policy(&body.new_password)?;
    if password_matches(pool.get_ref(), id, &body.new_password).await? {
        return Err(ApiError::bad_request(
            "the new password is identical to the old password",
        ));
    }
    let mut tx = pool.begin().await?;
    set_password(&mut *tx, id, &body.new_password).await?;
    audit::record(
        &mut *tx,
        &entry(&caller, "update", &user.username, "changed the password"),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

/// Grant or revoke system administration (system administrators; not on
/// yourself).
#[utoipa::path(
    put, path = "/users/{user_id}/sysadmin", tag = "user", operation_id = "setUserSysAdmin",
    params(("user_id" = i64, Path, description = "User id")),
    request_body = UserSysAdminFlag,
    responses(
        (status = 200, description = "Changed"),
        (status = 400, description = "Bad body", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not an administrator, or yourself", body = ErrorsBody),
        (status = 404, description = "No such user", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn update_sysadmin(
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
    body: web::Json<UserSysAdminFlag>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    require_system(&caller, "user", "update")?;
    if caller_user_id(&caller) == Some(id) {
        return Err(ApiError::forbidden(
            "you cannot change your own system administrator flag",
        ));
    }
    let user = load_user(&pool, id).await?;
    let description = if body.sysadmin_flag {
        "granted system administration"
    } else {
        "revoked system administration"
    };
    let mut tx = pool.begin().await?;
    set_sysadmin(&mut *tx, id, body.sysadmin_flag).await?;
    audit::record(
        &mut *tx,
        &entry(&caller, "update", &user.username, description),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_terms_parse_with_direction() {
        let keys = [("name", 1), ("creation_time", 2)];
        assert_eq!(
            parse_sort(Some("name,-creation_time"), &keys).unwrap(),
            vec![(1, false), (2, true)]
        );
        assert!(parse_sort(Some("nmae"), &keys).is_err());
        assert!(parse_sort(None, &keys).unwrap().is_empty());
    }

    #[test]
    fn profiles_follow_harbor() {
        assert!(check_profile("a@b.c", "Alice", "").is_ok());
        assert!(check_profile("", "Alice", "").is_err());
        assert!(check_profile("a@b.c", "", "").is_err());
        assert!(check_profile("a@b.c", "Al$ce", "").is_err());
        assert!(check_profile("a@b.c", "Alice", &"x".repeat(31)).is_err());
    }
}
