//! `/projects/{project_name_or_id}/members`: who holds which role in a
//! project, as Harbor's `member` API. Only user members exist today; group
//! members (`member_group`) arrive with LDAP and OIDC groups and are refused
//! until then.
//!
//! Harbor's API lets a project admin change or remove their own membership;
//! its console does not offer it, because it locks the admin out (possibly
//! leaving the project with nobody to manage it). Wharf enforces the
//! console's rule in the API: members other than system administrators
//! cannot change or remove their own membership (403).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::created_at;
use super::error::{ErrorsBody, resource};
use super::{ApiError, ApiResult, PageParams, paginated, project_access, require};
use crate::audit::{self, AuditEntry};
use crate::error::Error;
use crate::members::{
    Member, MemberQuery, add_member, get_member, remove_member_by_id, search_members,
    update_member_role_by_id,
};
use crate::roles::Role;
use crate::security::{Caller, ProjectAccess};
use crate::users::{get_user, get_user_by_name};

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_members,
        create_member,
        get_member_handler,
        update_member,
        delete_member
    ),
    components(schemas(ProjectMemberEntity, ProjectMember, UserEntity, UserGroup, RoleRequest))
)]
pub struct Doc;

/// Mount this module's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/projects/{project_name_or_id}/members")
            .route(web::get().to(list_members))
            .route(web::post().to(create_member)),
    )
    .service(
        resource("/projects/{project_name_or_id}/members/{mid}")
            .route(web::get().to(get_member_handler))
            .route(web::put().to(update_member))
            .route(web::delete().to(delete_member)),
    );
}

/// A membership as Harbor shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProjectMemberEntity {
    /// The membership id (`mid`).
    pub id: i64,
    pub project_id: i64,
    /// The member's username.
    pub entity_name: String,
    /// `projectAdmin`, `maintainer`, `developer`, `guest`, `limitedGuest`.
    pub role_name: String,
    pub role_id: i64,
    /// The user id.
    pub entity_id: i64,
    /// `u` for a user.
    pub entity_type: String,
}

impl From<Member> for ProjectMemberEntity {
    fn from(member: Member) -> Self {
        ProjectMemberEntity {
            id: member.id,
            project_id: member.project_id,
            entity_name: member.username,
            role_name: member.role.name().to_owned(),
            role_id: i64::from(member.role.id()),
            entity_id: member.user_id,
            entity_type: "u".to_owned(),
        }
    }
}

/// What `POST .../members` takes: a role and a user by id or name.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct ProjectMember {
    /// 1 projectAdmin, 2 developer, 3 guest, 4 maintainer, 5 limitedGuest.
    pub role_id: i64,
    pub member_user: Option<UserEntity>,
    /// Not supported yet.
    pub member_group: Option<UserGroup>,
}

/// A user named by id or username.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct UserEntity {
    pub user_id: i64,
    pub username: String,
}

/// A user group (not supported yet).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct UserGroup {
    pub id: i64,
    pub group_name: String,
    pub group_type: i64,
    pub ldap_group_dn: String,
}

impl UserGroup {
    fn is_given(&self) -> bool {
        self.id > 0 || !self.group_name.is_empty() || !self.ldap_group_dn.is_empty()
    }
}

/// A new role for a member.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct RoleRequest {
    pub role_id: i64,
}

/// Query of `GET .../members`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListMembersParams {
    /// Part of the member's name.
    pub entityname: Option<String>,
}

fn role(id: i64) -> ApiResult<Role> {
    i16::try_from(id)
        .ok()
        .and_then(Role::from_id)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid role {id}: must be a built-in project role (1 projectAdmin, \
                 2 developer, 3 guest, 4 maintainer, 5 limitedGuest)"
            ))
        })
}

async fn load_member(pool: &PgPool, access: &ProjectAccess, mid: i64) -> ApiResult<Member> {
    match get_member(pool, access.project.id, mid).await {
        Ok(member) => Ok(member),
        Err(Error::NotFound) => Err(ApiError::not_found(format!(
            "member {mid} not found in project {}",
            access.project.name
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Members other than system administrators may not touch their own
/// membership (see the module comment).
fn refuse_self(caller: &Caller, member: &Member, action: &str) -> ApiResult<()> {
    match caller.principal.user() {
        Some(user) if user.id == member.user_id && !user.sysadmin => Err(ApiError::forbidden(
            format!("you cannot {action} your own membership"),
        )),
        _ => Ok(()),
    }
}

fn entry<'a>(
    caller: &'a Caller,
    project_id: i64,
    operation: &'a str,
    resource: &'a str,
    description: &'a str,
) -> AuditEntry<'a> {
    AuditEntry {
        project_id: Some(project_id),
        username: caller.principal.audit_name(),
        operation,
        description,
        success: true,
        resource_type: "member",
        resource,
        client_addr: caller.client_addr.as_deref(),
    }
}

/// The members of a project, by name.
#[utoipa::path(
    get, path = "/projects/{project_name_or_id}/members", tag = "member",
    operation_id = "listProjectMembers",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
        ListMembersParams,
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Page size, 1 to 100 (default 10)"),
    ),
    responses(
        (status = 200, description = "One page of members; X-Total-Count and Link headers", body = [ProjectMemberEntity]),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to list members", body = ErrorsBody),
        (status = 404, description = "No such project, or not visible to the caller", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn list_members(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    params: web::Query<ListMembersParams>,
    paging: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let access = project_access(&req, &pool, &caller, &path).await?;
    require(&caller, &access, "member", "list")?;
    let page = paging.page()?;
    let query = MemberQuery {
        entity_name_contains: params.entityname.clone().filter(|n| !n.is_empty()),
        page,
    };
    let listing = search_members(pool.get_ref(), access.project.id, &query).await?;
    Ok(paginated(&req, listing, page, ProjectMemberEntity::from))
}

/// Add a user to a project with a role.
#[utoipa::path(
    post, path = "/projects/{project_name_or_id}/members", tag = "member",
    operation_id = "createProjectMember",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    request_body = ProjectMember,
    responses(
        (status = 201, description = "Added; Location is .../members/{mid}"),
        (status = 400, description = "Unknown role, no user given, or a group", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to add members", body = ErrorsBody),
        (status = 404, description = "No such project or user", body = ErrorsBody),
        (status = 409, description = "Already a member", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn create_member(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: web::Json<ProjectMember>,
) -> ApiResult<HttpResponse> {
    let access = project_access(&req, &pool, &caller, &path).await?;
    require(&caller, &access, "member", "create")?;
    let body = body.into_inner();
    let wanted = body.member_user.unwrap_or_default();
    if wanted.user_id <= 0 && wanted.username.is_empty() {
        if body.member_group.as_ref().is_some_and(UserGroup::is_given) {
            return Err(ApiError::bad_request(
                "group members are not supported yet: give member_user",
            ));
        }
        return Err(ApiError::bad_request(
            "at least one of member_user or member_group must be provided",
        ));
    }
    let role = role(body.role_id)?;
    let found = if wanted.user_id > 0 {
        get_user(pool.get_ref(), wanted.user_id).await
    } else {
        get_user_by_name(pool.get_ref(), &wanted.username).await
    };
    let user = match found {
        Ok(user) => user,
        Err(Error::NotFound) if wanted.user_id > 0 => {
            return Err(ApiError::not_found(format!(
                "user {} not found",
                wanted.user_id
            )));
        }
        Err(Error::NotFound) => {
            return Err(ApiError::not_found(format!(
                "user {} not found",
                wanted.username
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let project = &access.project;
    let mut tx = pool.begin().await?;
    let mid = match add_member(&mut *tx, project.id, user.id, role).await {
        Err(Error::Conflict(_)) => {
            return Err(ApiError::conflict(format!(
                "{} is already a member of project {}",
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
        &entry(&caller, project.id, "create", &user.username, &description),
    )
    .await?;
    tx.commit().await?;
    Ok(created_at(&req, mid))
}

/// One membership.
#[utoipa::path(
    get, path = "/projects/{project_name_or_id}/members/{mid}", tag = "member",
    operation_id = "getProjectMember",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("mid" = i64, Path, description = "Membership id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    responses(
        (status = 200, description = "The membership", body = ProjectMemberEntity),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to read members", body = ErrorsBody),
        (status = 404, description = "No such project or membership", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn get_member_handler(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, i64)>,
) -> ApiResult<HttpResponse> {
    let (project, mid) = path.into_inner();
    let access = project_access(&req, &pool, &caller, &project).await?;
    require(&caller, &access, "member", "read")?;
    let member = load_member(&pool, &access, mid).await?;
    Ok(HttpResponse::Ok().json(ProjectMemberEntity::from(member)))
}

/// Change a member's role.
#[utoipa::path(
    put, path = "/projects/{project_name_or_id}/members/{mid}", tag = "member",
    operation_id = "updateProjectMember",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("mid" = i64, Path, description = "Membership id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    request_body = RoleRequest,
    responses(
        (status = 200, description = "Changed"),
        (status = 400, description = "Unknown role", body = ErrorsBody),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to update members, or your own membership", body = ErrorsBody),
        (status = 404, description = "No such project or membership", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn update_member(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, i64)>,
    body: web::Json<RoleRequest>,
) -> ApiResult<HttpResponse> {
    let (project, mid) = path.into_inner();
    let access = project_access(&req, &pool, &caller, &project).await?;
    require(&caller, &access, "member", "update")?;
    let role = role(body.role_id)?;
    let member = load_member(&pool, &access, mid).await?;
    refuse_self(&caller, &member, "change")?;
    let mut tx = pool.begin().await?;
    update_member_role_by_id(&mut *tx, access.project.id, mid, role).await?;
    let description = format!(
        "changed the role of {} in project {} from {} to {role}",
        member.username, access.project.name, member.role
    );
    audit::record(
        &mut *tx,
        &entry(
            &caller,
            access.project.id,
            "update",
            &member.username,
            &description,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}

/// Remove a member from a project.
#[utoipa::path(
    delete, path = "/projects/{project_name_or_id}/members/{mid}", tag = "member",
    operation_id = "deleteProjectMember",
    params(
        ("project_name_or_id" = String, Path, description = "Project name or id"),
        ("mid" = i64, Path, description = "Membership id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "The path value is a name even if numeric"),
    ),
    responses(
        (status = 200, description = "Removed"),
        (status = 401, description = "Not signed in", body = ErrorsBody),
        (status = 403, description = "Not allowed to remove members, or your own membership", body = ErrorsBody),
        (status = 404, description = "No such project or membership", body = ErrorsBody),
    ),
    security(("basic" = []))
)]
async fn delete_member(
    req: HttpRequest,
    caller: Caller,
    pool: web::Data<PgPool>,
    path: web::Path<(String, i64)>,
) -> ApiResult<HttpResponse> {
    let (project, mid) = path.into_inner();
    let access = project_access(&req, &pool, &caller, &project).await?;
    require(&caller, &access, "member", "delete")?;
    let member = load_member(&pool, &access, mid).await?;
    refuse_self(&caller, &member, "remove")?;
    let mut tx = pool.begin().await?;
    remove_member_by_id(&mut *tx, access.project.id, mid).await?;
    let description = format!(
        "removed {} ({}) from project {}",
        member.username, member.role, access.project.name
    );
    audit::record(
        &mut *tx,
        &entry(
            &caller,
            access.project.id,
            "delete",
            &member.username,
            &description,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().finish())
}
