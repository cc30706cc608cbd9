//! Tag immutability: project rules naming repositories and tags (doublestar
//! selectors, [`crate::selectors`]) whose tags, once pushed, cannot be moved
//! to another digest nor deleted, and whose artifacts cannot be deleted.
//!
//! A rule has one repository selector and one tag selector, as Harbor's
//! matcher uses; a tag is immutable when an enabled rule's selectors both
//! select it. The repository selector sees the repository's name inside its
//! project (`app` for `team/app`, `sub/app` for `team/sub/app`), as in
//! Harbor. Enforcement is the registry's admission seam
//! ([`crate::admission`]), inside the push's or delete's transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};

use crate::error::{Error, Result, is_unique_violation};
use crate::selectors::{Decoration, Selector};
use crate::{Listing, Page};

/// Most rules one project may hold; each push in the project evaluates them
/// all.
pub const MAX_RULES_PER_PROJECT: i64 = 100;

/// What a rule is made of, validated ([`RuleSpec::parse`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    /// Harbor's `priority` (kept; rules are evaluated in priority order).
    pub priority: i32,
    /// A disabled rule protects nothing.
    pub disabled: bool,
    /// Which repositories (names inside the project).
    pub repository: Selector,
    /// Which tags.
    pub tag: Selector,
    /// Harbor's free-form `params`, kept as given.
    pub params: Value,
}

/// A selector as a request gives it: kind, decoration and pattern.
pub type SelectorFields<'a> = (&'a str, &'a str, &'a str);

/// The fields of a rule as a request gives them, before validation.
#[derive(Debug, Clone, Default)]
pub struct RuleInput<'a> {
    pub priority: i32,
    pub disabled: bool,
    /// `action`: must be `immutable`.
    pub action: Option<&'a str>,
    /// `template`: must be `immutable_template`.
    pub template: Option<&'a str>,
    /// The tag selectors.
    pub tag_selectors: Vec<SelectorFields<'a>>,
    /// Keys of `scope_selectors` with their selectors.
    pub scope_selectors: Vec<(&'a str, Vec<SelectorFields<'a>>)>,
    pub params: Option<Value>,
}

fn selector(what: &str, (kind, decoration, pattern): SelectorFields<'_>) -> Result<Selector> {
    if kind != "doublestar" {
        return Err(Error::Invalid(format!(
            "{what} selector kind must be \"doublestar\", not {kind:?}"
        )));
    }
    if pattern.is_empty() {
        return Err(Error::Invalid(format!(
            "{what} selector pattern is required"
        )));
    }
    Selector::parse(decoration, pattern)
        .map_err(|e| Error::Invalid(format!("{what} selector: {e}")))
}

fn only_one<T: Copy>(what: &str, items: &[T]) -> Result<T> {
    match items {
        [one] => Ok(*one),
        [] => Err(Error::Invalid(format!("a rule needs one {what} selector"))),
        _ => Err(Error::Invalid(format!(
            "a rule takes exactly one {what} selector (Harbor evaluates only the first); \
             use {{a,b}} in the pattern to name several"
        ))),
    }
}

impl RuleSpec {
    /// Validate a rule: action `immutable`, template `immutable_template`,
    /// exactly one doublestar tag selector (`matches`/`excludes`) and one
    /// doublestar repository selector (`repoMatches`/`repoExcludes`) under
    /// `scope_selectors.repository`, with non-empty patterns that compile.
    pub fn parse(input: &RuleInput<'_>) -> Result<RuleSpec> {
        match input.action {
            Some("immutable") => {}
            None | Some("") => return Err(Error::Invalid("action is required".into())),
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "action must be \"immutable\", not {other:?}"
                )));
            }
        }
        match input.template {
            Some("immutable_template") => {}
            Some(other) if !other.is_empty() => {
                return Err(Error::Invalid(format!(
                    "template must be \"immutable_template\", not {other:?}"
                )));
            }
            _ => return Err(Error::Invalid("template is required".into())),
        }
        if let Some((key, _)) = input
            .scope_selectors
            .iter()
            .find(|(key, _)| *key != "repository")
        {
            return Err(Error::Invalid(format!(
                "unknown scope selector {key:?}: only \"repository\" is supported"
            )));
        }
        let repositories: Vec<SelectorFields<'_>> = input
            .scope_selectors
            .iter()
            .flat_map(|(_, selectors)| selectors.iter().copied())
            .collect();
        let repository = selector("repository", only_one("repository", &repositories)?)?;
        let tag = selector("tag", only_one("tag", &input.tag_selectors)?)?;
        Ok(RuleSpec {
            priority: input.priority,
            disabled: input.disabled,
            repository,
            tag,
            params: input
                .params
                .clone()
                .unwrap_or_else(|| Value::Object(Default::default())),
        })
    }
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ImmutableRule {
    /// The rule's id.
    pub id: i64,
    /// Its project.
    pub project_id: i64,
    /// Its selectors and settings.
    pub spec: RuleSpec,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl ImmutableRule {
    /// Whether this rule (enabled or not) selects `tag` in `repository` (the
    /// repository's full name, project included).
    pub fn selects(&self, repository: &str, tag: &str) -> bool {
        self.spec.repository.selects(name_in_project(repository)) && self.spec.tag.selects(tag)
    }

    /// `rule 3 (repositories matching **, tags matching v*)`, for messages.
    pub fn describe(&self) -> String {
        let word = |d: Decoration| match d {
            Decoration::Matches => "matching",
            Decoration::Excludes => "excluding",
        };
        format!(
            "rule {} (repositories {} {}, tags {} {})",
            self.id,
            word(self.spec.repository.decoration),
            self.spec.repository.pattern.as_str(),
            word(self.spec.tag.decoration),
            self.spec.tag.pattern.as_str(),
        )
    }
}

/// `team/sub/app` → `sub/app`; a name without a project part is itself.
fn name_in_project(repository: &str) -> &str {
    repository
        .split_once('/')
        .map_or(repository, |(_, rest)| rest)
}

/// Harbor's spelling of a repository decoration.
pub fn repository_decoration(d: Decoration) -> &'static str {
    match d {
        Decoration::Matches => "repoMatches",
        Decoration::Excludes => "repoExcludes",
    }
}

/// Harbor's spelling of a tag decoration.
pub fn tag_decoration(d: Decoration) -> &'static str {
    match d {
        Decoration::Matches => "matches",
        Decoration::Excludes => "excludes",
    }
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: i64,
    project_id: i64,
    priority: i32,
    disabled: bool,
    repo_decoration: String,
    repo_pattern: String,
    tag_decoration: String,
    tag_pattern: String,
    params: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<RuleRow> for ImmutableRule {
    type Error = Error;

    fn try_from(row: RuleRow) -> Result<Self> {
        // Stored rules were validated on the way in; one that no longer
        // compiles is a bug to report, not a rule to skip.
        let compile = |d: &str, p: &str| {
            Selector::parse(d, p).map_err(|e| {
                Error::Internal(format!(
                    "stored immutable tag rule {} is invalid: {e}",
                    row.id
                ))
            })
        };
        Ok(ImmutableRule {
            id: row.id,
            project_id: row.project_id,
            spec: RuleSpec {
                priority: row.priority,
                disabled: row.disabled,
                repository: compile(&row.repo_decoration, &row.repo_pattern)?,
                tag: compile(&row.tag_decoration, &row.tag_pattern)?,
                params: row.params.clone(),
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const RULE_COLUMNS: &str = "id, project_id, priority, disabled, repo_decoration, repo_pattern,
    tag_decoration, tag_pattern, params, created_at, updated_at";

fn duplicate(e: sqlx::Error) -> Error {
    if is_unique_violation(&e, "immutable_tag_rules_unique") {
        Error::Conflict("immutable rule already exists".into())
    } else {
        Error::Database(e)
    }
}

/// Add a rule to a project ([`Error::Conflict`] if the same selectors are
/// already a rule there; [`Error::Invalid`] past
/// [`MAX_RULES_PER_PROJECT`]).
pub async fn create_rule(
    conn: &mut PgConnection,
    project_id: i64,
    spec: &RuleSpec,
) -> Result<ImmutableRule> {
    // Serialise rule creation per project so the count check holds.
    sqlx::query("SELECT id FROM projects WHERE id = $1 AND NOT deleted FOR UPDATE")
        .bind(project_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound)?;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM immutable_tag_rules WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(&mut *conn)
            .await?;
    if count >= MAX_RULES_PER_PROJECT {
        return Err(Error::Invalid(format!(
            "a project holds at most {MAX_RULES_PER_PROJECT} immutable tag rules"
        )));
    }
    let row = sqlx::query_as::<_, RuleRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO immutable_tag_rules (project_id, priority, disabled, repo_decoration,
                                          repo_pattern, tag_decoration, tag_pattern, params)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING {RULE_COLUMNS}"
    )))
    .bind(project_id)
    .bind(spec.priority)
    .bind(spec.disabled)
    .bind(repository_decoration(spec.repository.decoration))
    .bind(spec.repository.pattern.as_str())
    .bind(tag_decoration(spec.tag.decoration))
    .bind(spec.tag.pattern.as_str())
    .bind(&spec.params)
    .fetch_one(&mut *conn)
    .await
    .map_err(duplicate)?;
    row.try_into()
}

/// Replace a rule's selectors and settings.
pub async fn update_rule(
    db: impl PgExecutor<'_>,
    project_id: i64,
    id: i64,
    spec: &RuleSpec,
) -> Result<ImmutableRule> {
    let row = sqlx::query_as::<_, RuleRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE immutable_tag_rules
            SET priority = $3, disabled = $4, repo_decoration = $5, repo_pattern = $6,
                tag_decoration = $7, tag_pattern = $8, params = $9, updated_at = now()
          WHERE project_id = $1 AND id = $2
         RETURNING {RULE_COLUMNS}"
    )))
    .bind(project_id)
    .bind(id)
    .bind(spec.priority)
    .bind(spec.disabled)
    .bind(repository_decoration(spec.repository.decoration))
    .bind(spec.repository.pattern.as_str())
    .bind(tag_decoration(spec.tag.decoration))
    .bind(spec.tag.pattern.as_str())
    .bind(&spec.params)
    .fetch_optional(db)
    .await
    .map_err(duplicate)?
    .ok_or(Error::NotFound)?;
    row.try_into()
}

/// Remove a rule of a project.
pub async fn delete_rule(db: impl PgExecutor<'_>, project_id: i64, id: i64) -> Result<()> {
    let done = sqlx::query("DELETE FROM immutable_tag_rules WHERE project_id = $1 AND id = $2")
        .bind(project_id)
        .bind(id)
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

/// One rule of a project.
pub async fn get_rule(db: impl PgExecutor<'_>, project_id: i64, id: i64) -> Result<ImmutableRule> {
    sqlx::query_as::<_, RuleRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {RULE_COLUMNS} FROM immutable_tag_rules WHERE project_id = $1 AND id = $2"
    )))
    .bind(project_id)
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(Error::NotFound)?
    .try_into()
}

/// A column rules can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSort {
    Id,
    Priority,
    CreationTime,
    UpdateTime,
}

impl RuleSort {
    fn column(self) -> &'static str {
        match self {
            RuleSort::Id => "id",
            RuleSort::Priority => "priority",
            RuleSort::CreationTime => "created_at",
            RuleSort::UpdateTime => "updated_at",
        }
    }
}

/// Filter, order and page for [`list_rules`].
#[derive(Debug, Clone, Default)]
pub struct RuleQuery {
    /// The project whose rules to list.
    pub project_id: i64,
    /// Only enabled (`Some(false)`) or disabled (`Some(true)`) rules.
    pub disabled: Option<bool>,
    /// Sort keys, each with `true` for descending; ties (and an empty list)
    /// fall back to the id.
    pub sort: Vec<(RuleSort, bool)>,
    /// Which page.
    pub page: Page,
}

/// A project's rules matching `query`.
pub async fn list_rules(
    conn: &mut PgConnection,
    query: &RuleQuery,
) -> Result<Listing<ImmutableRule>> {
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM immutable_tag_rules
          WHERE project_id = $1 AND ($2::bool IS NULL OR disabled = $2)",
    )
    .bind(query.project_id)
    .bind(query.disabled)
    .fetch_one(&mut *conn)
    .await?;
    let mut order: Vec<String> = query
        .sort
        .iter()
        .map(|(key, desc)| format!("{} {}", key.column(), if *desc { "DESC" } else { "ASC" }))
        .collect();
    order.push("id ASC".into());
    let (limit, offset) = query.page.limit_offset();
    let rows = sqlx::query_as::<_, RuleRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {RULE_COLUMNS} FROM immutable_tag_rules
          WHERE project_id = $1 AND ($2::bool IS NULL OR disabled = $2)
          ORDER BY {} LIMIT $3 OFFSET $4",
        order.join(", ")
    )))
    .bind(query.project_id)
    .bind(query.disabled)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let items = rows
        .into_iter()
        .map(ImmutableRule::try_from)
        .collect::<Result<_>>()?;
    Ok(Listing { items, total })
}

/// The enabled rules of a project, in priority order: what a push or
/// delete is checked against.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<ImmutableRule>,
}

impl RuleSet {
    /// Whether no rule is enabled (nothing is immutable).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first enabled rule that makes `tag` in `repository` (full name)
    /// immutable, if any.
    pub fn protecting(&self, repository: &str, tag: &str) -> Option<&ImmutableRule> {
        self.rules.iter().find(|r| r.selects(repository, tag))
    }
}

/// Load the enabled rules of a project.
pub async fn enabled_rules(db: impl PgExecutor<'_>, project_id: i64) -> Result<RuleSet> {
    let rows = sqlx::query_as::<_, RuleRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {RULE_COLUMNS} FROM immutable_tag_rules
          WHERE project_id = $1 AND NOT disabled ORDER BY priority, id"
    )))
    .bind(project_id)
    .fetch_all(db)
    .await?;
    let rules = rows
        .into_iter()
        .map(ImmutableRule::try_from)
        .collect::<Result<_>>()?;
    Ok(RuleSet { rules })
}

/// Which of `tags` in the repository `repository` (full name) of the
/// project are immutable now, each with the rule that makes it so: for
/// retention, which must never remove them, and for the artifact API.
pub async fn immutable_tags<'t>(
    db: impl PgExecutor<'_>,
    project_id: i64,
    repository: &str,
    tags: &'t [String],
) -> Result<Vec<(&'t str, i64)>> {
    let rules = enabled_rules(db, project_id).await?;
    Ok(tags
        .iter()
        .filter_map(|t| rules.protecting(repository, t).map(|r| (t.as_str(), r.id)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(repo: (&'a str, &'a str), tag: (&'a str, &'a str)) -> RuleInput<'a> {
        RuleInput {
            action: Some("immutable"),
            template: Some("immutable_template"),
            tag_selectors: vec![("doublestar", tag.0, tag.1)],
            scope_selectors: vec![("repository", vec![("doublestar", repo.0, repo.1)])],
            ..RuleInput::default()
        }
    }

    fn rule(repo: (&str, &str), tag: (&str, &str)) -> ImmutableRule {
        ImmutableRule {
            id: 7,
            project_id: 1,
            spec: RuleSpec::parse(&input(repo, tag)).unwrap(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn repository_patterns_see_the_name_inside_the_project() {
        let r = rule(("repoMatches", "app"), ("matches", "v*"));
        assert!(r.selects("team/app", "v1"));
        assert!(!r.selects("team/sub/app", "v1"));
        assert!(!r.selects("team/app", "latest"));
        let deep = rule(("repoMatches", "**"), ("matches", "**"));
        assert!(deep.selects("team/sub/app", "anything"));
    }

    #[test]
    fn excludes_protect_everything_else() {
        let r = rule(("repoExcludes", "scratch/**"), ("excludes", "{latest,dev}"));
        assert!(r.selects("team/app", "v1"));
        assert!(!r.selects("team/app", "latest"));
        assert!(!r.selects("team/scratch/x", "v1"));
        assert_eq!(
            r.describe(),
            "rule 7 (repositories excluding scratch/**, tags excluding {latest,dev})"
        );
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let err = |i: RuleInput<'_>| RuleSpec::parse(&i).unwrap_err().to_string();
        let mut i = input(("repoMatches", "**"), ("matches", "**"));
        i.action = Some("retain");
        assert!(err(i).contains("action"));
        let mut i = input(("repoMatches", "**"), ("matches", "**"));
        i.template = None;
        assert!(err(i).contains("template"));
        assert!(err(input(("repoMatches", "**"), ("matches", ""))).contains("pattern"));
        assert!(err(input(("repoMatches", "**"), ("sometimes", "x"))).contains("decoration"));
        assert!(err(input(("repoMatches", "{a,b"), ("matches", "x"))).contains("repository"));
        let mut i = input(("repoMatches", "**"), ("matches", "**"));
        i.tag_selectors.push(("doublestar", "matches", "x"));
        assert!(err(i).contains("exactly one tag"));
        let mut i = input(("repoMatches", "**"), ("matches", "**"));
        i.tag_selectors = vec![("regex", "matches", "x")];
        assert!(err(i).contains("doublestar"));
        let mut i = input(("repoMatches", "**"), ("matches", "**"));
        i.scope_selectors = vec![];
        assert!(err(i).contains("one repository selector"));
        let mut i = input(("repoMatches", "**"), ("matches", "**"));
        i.scope_selectors.push(("namespace", vec![]));
        assert!(err(i).contains("namespace"));
    }
}
