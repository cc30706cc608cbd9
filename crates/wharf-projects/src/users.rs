//! Local users: creation with Harbor's username and password rules, profile
//! and password changes, the system-admin flag, soft deletion, and the
//! `admin` account made at first start.

use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgExecutor, Postgres};

use crate::error::{Error, Result, is_unique_violation};
use crate::names::{Username, validate_email};
use crate::{Listing, Page, password};

/// The system administrator created at first start.
pub const ADMIN: &str = "admin";

/// A user as other code sees it; the password hash stays in the database.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    /// Database id (Harbor's `user_id`).
    pub id: i64,
    /// Login name.
    pub username: String,
    /// E-mail address, unique among live users (case-insensitive).
    pub email: Option<String>,
    /// Display name.
    pub realname: String,
    /// Free text.
    pub comment: String,
    /// System administrator: may do everything everywhere.
    #[sqlx(rename = "sysadmin_flag")]
    pub sysadmin: bool,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// When the user last changed.
    pub updated_at: DateTime<Utc>,
}

/// What is needed to create a user.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    /// Login name.
    pub username: Username,
    /// E-mail address (checked loosely).
    pub email: Option<&'a str>,
    /// Display name.
    pub realname: &'a str,
    /// Free text.
    pub comment: &'a str,
    /// Initial password; must satisfy [`password::check_policy`].
    pub password: &'a str,
    /// Make the user a system administrator.
    pub sysadmin: bool,
}

/// The editable profile fields of a user.
#[derive(Debug, Clone, Default)]
pub struct UserProfile<'a> {
    /// New e-mail address; `None` removes it.
    pub email: Option<&'a str>,
    /// New display name.
    pub realname: &'a str,
    /// New free text.
    pub comment: &'a str,
}

/// Filter and page for [`list_users`].
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Only users whose name contains this text (case-insensitive).
    pub username_contains: Option<String>,
    /// Which page.
    pub page: Page,
}

fn map_user_conflict(err: sqlx::Error, username: &str, email: Option<&str>) -> Error {
    if is_unique_violation(&err, "users_username_live") {
        Error::Conflict(format!("username {username} is already taken"))
    } else if is_unique_violation(&err, "users_email_live") {
        Error::Conflict(format!(
            "e-mail address {} is already in use",
            email.unwrap_or_default()
        ))
    } else {
        Error::Database(err)
    }
}

/// Create a user after checking the e-mail address and the password policy.
/// A taken username or e-mail address is a [`Error::Conflict`].
pub async fn create_user(db: impl PgExecutor<'_>, new: &NewUser<'_>) -> Result<User> {
    if let Some(email) = new.email {
        validate_email(email)?;
    }
    password::check_policy(new.password)?;
    let hash = password::hash_blocking(new.password).await?;
    insert_user(db, new, &hash).await
}

async fn insert_user(db: impl PgExecutor<'_>, new: &NewUser<'_>, hash: &str) -> Result<User> {
    sqlx::query_as::<_, User>(
        "INSERT INTO users (username, email, realname, comment, password_hash, sysadmin_flag)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id, username, email, realname, comment, sysadmin_flag, created_at, updated_at",
    )
    .bind(new.username.as_str())
    .bind(new.email)
    .bind(new.realname)
    .bind(new.comment)
    .bind(hash)
    .bind(new.sysadmin)
    .fetch_one(db)
    .await
    .map_err(|e| map_user_conflict(e, new.username.as_str(), new.email))
}

/// The live user with this id.
pub async fn get_user(db: impl PgExecutor<'_>, id: i64) -> Result<User> {
    sqlx::query_as::<_, User>(
        "SELECT id, username, email, realname, comment, sysadmin_flag, created_at, updated_at
         FROM users WHERE id = $1 AND NOT deleted",
    )
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound)
}

/// The live user with this username (exact match).
pub async fn get_user_by_name(db: impl PgExecutor<'_>, username: &str) -> Result<User> {
    sqlx::query_as::<_, User>(
        "SELECT id, username, email, realname, comment, sysadmin_flag, created_at, updated_at
         FROM users WHERE username = $1 AND NOT deleted",
    )
    .bind(username)
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound)
}

/// Live users ordered by id, one page at a time.
pub async fn list_users(
    db: impl Acquire<'_, Database = Postgres>,
    query: &UserQuery,
) -> Result<Listing<User>> {
    let mut conn = db.acquire().await?;
    let pattern = query
        .username_contains
        .as_deref()
        .map(|s| format!("%{}%", escape_like(s)));
    let (limit, offset) = query.page.limit_offset();
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM users
         WHERE NOT deleted AND ($1::text IS NULL OR username ILIKE $1)",
    )
    .bind(&pattern)
    .fetch_one(&mut *conn)
    .await?;
    let items = sqlx::query_as::<_, User>(
        "SELECT id, username, email, realname, comment, sysadmin_flag, created_at, updated_at
         FROM users
         WHERE NOT deleted AND ($1::text IS NULL OR username ILIKE $1)
         ORDER BY id LIMIT $2 OFFSET $3",
    )
    .bind(&pattern)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Listing { items, total })
}

/// Escape `%`, `_` and `\` so user text matches literally inside `LIKE`.
pub(crate) fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Replace a user's e-mail address, display name and comment.
pub async fn update_profile(
    db: impl PgExecutor<'_>,
    id: i64,
    profile: &UserProfile<'_>,
) -> Result<User> {
    if let Some(email) = profile.email {
        validate_email(email)?;
    }
    sqlx::query_as::<_, User>(
        "UPDATE users SET email = $2, realname = $3, comment = $4, updated_at = now()
         WHERE id = $1 AND NOT deleted
         RETURNING id, username, email, realname, comment, sysadmin_flag, created_at, updated_at",
    )
    .bind(id)
    .bind(profile.email)
    .bind(profile.realname)
    .bind(profile.comment)
    .fetch_optional(db)
    .await
    .map_err(|e| map_user_conflict(e, "", profile.email))?
    .ok_or(Error::NotFound)
}

/// Set a new password (policy checked). Checking the old password, where the
/// caller is not an administrator, is the caller's job: see [`authenticate`].
pub async fn set_password(db: impl PgExecutor<'_>, id: i64, new_password: &str) -> Result<()> {
    password::check_policy(new_password)?;
    let hash = password::hash_blocking(new_password).await?;
    let done = sqlx::query(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1 AND NOT deleted",
    )
    .bind(id)
    .bind(hash)
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Grant or revoke system administration.
pub async fn set_sysadmin(db: impl PgExecutor<'_>, id: i64, sysadmin: bool) -> Result<()> {
    let done = sqlx::query(
        "UPDATE users SET sysadmin_flag = $2, updated_at = now() WHERE id = $1 AND NOT deleted",
    )
    .bind(id)
    .bind(sysadmin)
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// Soft-delete a user: the row stays for history, the name and e-mail become
/// free again, the password stops working and project memberships go.
pub async fn delete_user(db: impl Acquire<'_, Database = Postgres>, id: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let done = sqlx::query(
        "UPDATE users SET deleted = true, password_hash = NULL, updated_at = now()
         WHERE id = $1 AND NOT deleted",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    sqlx::query("DELETE FROM project_members WHERE entity_type = 'u' AND entity_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Check a username and password. `Ok(None)` when the user does not exist,
/// is deleted, has no local password or the password is wrong: callers must
/// not tell these apart to the client. An unknown user still costs one hash
/// verification, so timing does not reveal which names exist.
pub async fn authenticate(
    db: impl PgExecutor<'_>,
    username: &str,
    password: &str,
) -> Result<Option<User>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: User,
        password_hash: Option<String>,
    }
    let row = sqlx::query_as::<_, Row>(
        "SELECT id, username, email, realname, comment, sysadmin_flag, created_at, updated_at,
                password_hash
         FROM users WHERE username = $1 AND NOT deleted",
    )
    .bind(username)
    .fetch_optional(db)
    .await?;
    match row {
        Some(Row {
            user,
            password_hash: Some(hash),
        }) => Ok(password::verify_blocking(password, &hash)
            .await
            .then_some(user)),
        _ => {
            let _ = password::verify_blocking(password, dummy_hash()).await;
            Ok(None)
        }
    }
}

/// A hash nobody's password matches, to spend the same time on unknown users.
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| password::hash(&password::generate()).unwrap_or_default())
}

/// Make sure the system administrator `admin` exists. On first start it is
/// created with `password` (policy checked) or, when `None`, a generated
/// strong password that is returned so the caller can show it exactly once.
/// Returns `None` when `admin` already exists (its password is never reset)
/// or was created with the given password.
pub async fn ensure_admin(
    db: impl Acquire<'_, Database = Postgres>,
    password: Option<&str>,
) -> Result<Option<String>> {
    let mut tx = db.begin().await?;
    // Several replicas may start at once: serialise the check-then-insert.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('wharf-projects:ensure_admin'))")
        .execute(&mut *tx)
        .await?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE username = $1 AND NOT deleted)",
    )
    .bind(ADMIN)
    .fetch_one(&mut *tx)
    .await?;
    if exists {
        return Ok(None);
    }
    let (chosen, generated) = match password {
        Some(given) => (given.to_owned(), None),
        None => {
            let generated = password::generate();
            (generated.clone(), Some(generated))
        }
    };
    let new = NewUser {
        username: Username::parse(ADMIN)?,
        email: None,
        realname: "system admin",
        comment: "created at first start",
        password: &chosen,
        sysadmin: true,
    };
    create_user(&mut *tx, &new).await?;
    tx.commit().await?;
    tracing::info!(
        generated = generated.is_some(),
        "created the system administrator {ADMIN}"
    );
    Ok(generated)
}

/// How a text filter of a search matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextMatch {
    /// The whole value equals the text.
    Exact(String),
    /// The value contains the text (case-insensitive).
    Contains(String),
}

impl TextMatch {
    /// The text for an exact comparison, if this is one.
    pub(crate) fn exact(this: Option<&TextMatch>) -> Option<&str> {
        match this {
            Some(TextMatch::Exact(text)) => Some(text),
            _ => None,
        }
    }

    /// A `LIKE` pattern for a containment test, if this is one.
    pub(crate) fn pattern(this: Option<&TextMatch>) -> Option<String> {
        match this {
            Some(TextMatch::Contains(text)) => Some(format!("%{}%", escape_like(text))),
            _ => None,
        }
    }
}

/// A column users can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSort {
    Id,
    Username,
    Email,
    CreationTime,
    UpdateTime,
}

impl UserSort {
    fn column(self) -> &'static str {
        match self {
            UserSort::Id => "id",
            UserSort::Username => "username",
            UserSort::Email => "email",
            UserSort::CreationTime => "created_at",
            UserSort::UpdateTime => "updated_at",
        }
    }
}

/// Filters, order and page for [`search_users`] (Harbor's `GET /users`).
#[derive(Debug, Clone, Default)]
pub struct UserSearch {
    /// Match on the username.
    pub username: Option<TextMatch>,
    /// Match on the e-mail address (exact matches ignore case).
    pub email: Option<TextMatch>,
    /// Sort keys, each with `true` for descending; ties and an empty list
    /// fall back to the id.
    pub sort: Vec<(UserSort, bool)>,
    /// Which page.
    pub page: Page,
}

/// Live users matching `search`, one page at a time.
pub async fn search_users(
    db: impl Acquire<'_, Database = Postgres>,
    search: &UserSearch,
) -> Result<Listing<User>> {
    let mut conn = db.acquire().await?;
    let (limit, offset) = search.page.limit_offset();
    let filter = "NOT deleted
          AND ($1::text IS NULL OR username = $1)
          AND ($2::text IS NULL OR username ILIKE $2)
          AND ($3::text IS NULL OR lower(email) = lower($3))
          AND ($4::text IS NULL OR email ILIKE $4)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM users WHERE {filter}"
    )))
    .bind(TextMatch::exact(search.username.as_ref()))
    .bind(TextMatch::pattern(search.username.as_ref()))
    .bind(TextMatch::exact(search.email.as_ref()))
    .bind(TextMatch::pattern(search.email.as_ref()))
    .fetch_one(&mut *conn)
    .await?;
    let mut order: Vec<String> = search
        .sort
        .iter()
        .map(|(key, desc)| format!("{} {}", key.column(), if *desc { "DESC" } else { "ASC" }))
        .collect();
    order.push("id ASC".into());
    let items = sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(format!(
        "SELECT id, username, email, realname, comment, sysadmin_flag, created_at, updated_at
         FROM users WHERE {filter}
         ORDER BY {} LIMIT $5 OFFSET $6",
        order.join(", ")
    )))
    .bind(TextMatch::exact(search.username.as_ref()))
    .bind(TextMatch::pattern(search.username.as_ref()))
    .bind(TextMatch::exact(search.email.as_ref()))
    .bind(TextMatch::pattern(search.email.as_ref()))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Listing { items, total })
}

/// Whether `password` is the user's current password (for "the new password
/// must differ" and "give your old password" checks).
pub async fn password_matches(db: impl PgExecutor<'_>, id: i64, password: &str) -> Result<bool> {
    let hash: Option<Option<String>> =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1 AND NOT deleted")
            .bind(id)
            .fetch_optional(db)
            .await?;
    match hash.flatten() {
        Some(hash) => Ok(password::verify_blocking(password, &hash).await),
        None => Ok(false),
    }
}

/// The live system administrator with the lowest id (normally `admin`):
/// the owner of projects that robots create, as in Harbor.
pub async fn first_sysadmin(db: impl PgExecutor<'_>) -> Result<User> {
    sqlx::query_as::<_, User>(
        "SELECT id, username, email, realname, comment, sysadmin_flag, created_at, updated_at
         FROM users WHERE sysadmin_flag AND NOT deleted ORDER BY id LIMIT 1",
    )
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound)
}
