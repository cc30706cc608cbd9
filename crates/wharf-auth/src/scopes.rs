//! Docker token scopes (`repository:library/app:pull,push`) and what RBAC
//! grants of them.
//!
//! A scope is `type:name:actions`; the name may itself hold `:` (a registry
//! host with a port), so the type ends at the first `:` and the actions start
//! after the last. What a token grants is what was asked for, cut down to what
//! the principal may do: an unknown project, a malformed name or a refused
//! action simply leaves the action out. Nothing here is ever an error to the
//! client, as the token specification requires.

use std::collections::HashMap;

use sqlx::PgPool;
use wharf_oci::RepositoryName;
use wharf_projects::{Principal, ProjectAccess};

use crate::error::AuthError;
use crate::tokens::ResourceAccess;

/// The repository actions, in the order tokens list them.
pub(crate) const REPOSITORY_ACTIONS: [&str; 3] = ["pull", "push", "delete"];

/// One requested scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `repository`, `registry`, ...
    pub kind: String,
    /// A repository name, `catalog`, ...
    pub name: String,
    /// The actions asked for, as written.
    pub actions: Vec<String>,
}

impl Scope {
    /// Parse one `type:name:actions` scope; `None` when it has no name part.
    pub fn parse(s: &str) -> Option<Scope> {
        let (kind, rest) = s.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(Scope {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions: actions
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    /// Every scope in `values`, each of which may hold several separated by
    /// spaces (the `scope` parameter may also repeat). Unparseable ones are
    /// dropped.
    pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Scope> {
        values
            .into_iter()
            .flat_map(str::split_whitespace)
            .filter_map(Scope::parse)
            .collect()
    }
}

/// What `principal` is granted of `scopes`, one entry per scope (with no
/// actions where nothing is allowed). Each project's access is loaded once.
pub(crate) async fn grant(
    pool: &PgPool,
    principal: &Principal,
    scopes: &[Scope],
) -> Result<Vec<ResourceAccess>, AuthError> {
    let mut projects: HashMap<String, Option<ProjectAccess>> = HashMap::new();
    let mut granted = Vec::with_capacity(scopes.len());
    for scope in scopes {
        let actions = match scope.kind.as_str() {
            "repository" => grant_repository(pool, principal, scope, &mut projects).await?,
            "registry"
                if scope.name == "catalog"
                    && scope.actions.iter().any(|a| a == "*")
                    && principal.can_system("catalog", "read") =>
            {
                vec!["*".to_owned()]
            }
            _ => Vec::new(),
        };
        granted.push(ResourceAccess {
            kind: scope.kind.clone(),
            name: scope.name.clone(),
            actions,
        });
    }
    Ok(granted)
}

async fn grant_repository(
    pool: &PgPool,
    principal: &Principal,
    scope: &Scope,
    projects: &mut HashMap<String, Option<ProjectAccess>>,
) -> Result<Vec<String>, AuthError> {
    let Ok(name) = RepositoryName::parse(&scope.name) else {
        return Ok(Vec::new());
    };
    let project = name.project().to_owned();
    if !projects.contains_key(&project) {
        let access = match wharf_projects::get_project_by_name(pool, &project).await {
            Ok(p) => Some(ProjectAccess::load(pool, principal, p).await?),
            Err(wharf_projects::Error::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        projects.insert(project.clone(), access);
    }
    let Some(Some(access)) = projects.get(&project) else {
        return Ok(Vec::new());
    };
    let wanted = |action: &str| scope.actions.iter().any(|a| a == action || a == "*");
    Ok(REPOSITORY_ACTIONS
        .into_iter()
        .filter(|action| wanted(action) && access.allows("repository", action))
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_may_hold_colons() {
        let s = Scope::parse("repository:localhost:5000/p/app:pull,push").unwrap();
        assert_eq!(s.kind, "repository");
        assert_eq!(s.name, "localhost:5000/p/app");
        assert_eq!(s.actions, ["pull", "push"]);
    }

    #[test]
    fn several_scopes_per_value_and_junk_dropped() {
        let all = Scope::parse_all([
            "repository:a/b:pull registry:catalog:*",
            "nonsense",
            "repository::pull",
            "repository:c/d:",
        ]);
        let names: Vec<_> = all.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a/b", "catalog", "c/d"]);
        assert!(all[2].actions.is_empty());
    }
}
