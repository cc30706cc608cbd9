//! The `/v2` authoriser: decides every registry request from its bearer
//! token (or, for clients that skip the token dance, Basic credentials).
//!
//! - No `Authorization` header: 401 with a Bearer challenge naming the scope
//!   the request needs, even on public projects, so Docker clients fetch a
//!   (possibly anonymous) token, as Harbor does.
//! - Bearer: the token must verify (see [`crate::tokens`]), its subject must
//!   still exist and be enabled (rechecked every `subject_recheck_secs`), it
//!   must hold an `access` entry for exactly the repository with every needed
//!   action, and it must be newer than the project (a project deleted and
//!   made again under the same name does not honour older tokens).
//! - Basic: the login is checked (throttled) and RBAC decides directly: a
//!   project the caller may not see (nor pull from) is "name unknown", a
//!   visible one where the action is refused is "denied".

use std::sync::Arc;

use actix_web::HttpRequest;
use async_trait::async_trait;
use wharf_projects::ProjectAccess;
use wharf_registry::seams::{self, Access, AuthError as Refusal, Authorizer};

use crate::credentials::Credentials;
use crate::error::AuthError;
use crate::login::LoginFailure;
use crate::recent;
use crate::tokens::{AccessClaims, Rejected};
use crate::{Auth, Inner};

/// [`Authorizer`] over [`Auth`].
pub(crate) struct RegistryAuthorizer(pub(crate) Auth);

/// A failure to decide (the database is unreachable) refuses the request
/// with 503, never lets it through; the cause goes to the log.
fn unavailable(e: AuthError) -> Refusal {
    Refusal::Unavailable {
        cause: e.to_string(),
    }
}

/// The scope a Docker client must ask for to perform `access`.
fn scope_of(access: &Access) -> Option<String> {
    match access {
        Access::Repository { name, actions } => Some(format!(
            "repository:{}:{}",
            name.as_str(),
            actions
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(",")
        )),
        Access::Catalog => Some("registry:catalog:*".to_owned()),
        Access::Base => None,
    }
}

impl Auth {
    /// The `WWW-Authenticate` value for a request needing `access`, with an
    /// RFC 6750 `error` when a token was presented.
    pub(crate) fn challenge(
        &self,
        req: &HttpRequest,
        access: &[Access],
        error: Option<&str>,
    ) -> String {
        let mut challenge = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            self.realm(req),
            self.inner.config.service
        );
        let scopes: Vec<String> = access.iter().filter_map(scope_of).collect();
        if !scopes.is_empty() {
            challenge.push_str(&format!(",scope=\"{}\"", scopes.join(" ")));
        }
        if let Some(error) = error {
            challenge.push_str(&format!(",error=\"{error}\""));
        }
        challenge
    }

    fn unauthorized(
        &self,
        req: &HttpRequest,
        access: &[Access],
        error: Option<&str>,
        message: &str,
    ) -> Refusal {
        Refusal::Unauthorized {
            challenge: self.challenge(req, access, error),
            message: message.to_owned(),
        }
    }

    async fn authorize_bearer(
        &self,
        req: &HttpRequest,
        access: &[Access],
        token: &str,
        client_addr: Option<String>,
    ) -> Result<seams::Principal, Refusal> {
        let claims = match self.inner.tokens.verify_access(token).await {
            Ok(claims) => claims,
            Err(Rejected::Invalid(reason)) => {
                tracing::debug!(reason, "refused a registry token");
                return Err(self.unauthorized(req, access, Some("invalid_token"), "invalid token"));
            }
            Err(Rejected::Internal(e)) => return Err(unavailable(e)),
        };
        match self.subject_still_active(&claims.sub).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(self.unauthorized(
                    req,
                    access,
                    Some("invalid_token"),
                    "the token's account no longer exists or is disabled",
                ));
            }
            Err(e) => return Err(unavailable(e)),
        }
        for needed in access {
            if !covers(&claims, needed) {
                return Err(self.unauthorized(
                    req,
                    access,
                    Some("insufficient_scope"),
                    "the token does not grant this access",
                ));
            }
            if let Access::Repository { name, .. } = needed {
                match self.project_created(name.project()).await {
                    Ok(Some(created)) if created > claims.iat => {
                        return Err(self.unauthorized(
                            req,
                            access,
                            Some("invalid_token"),
                            "the token predates the project",
                        ));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => return Err(Refusal::NameUnknown),
                    Err(e) => return Err(unavailable(e)),
                }
            }
        }
        Ok(seams::Principal {
            name: (!claims.sub.is_empty()).then_some(claims.sub),
            client_addr,
        })
    }

    async fn authorize_basic(
        &self,
        req: &HttpRequest,
        access: &[Access],
        name: &str,
        secret: &str,
        client_addr: Option<String>,
    ) -> Result<seams::Principal, Refusal> {
        let principal = match self.login(name, secret, client_addr.as_deref()).await {
            Ok(Ok(principal)) => principal,
            Ok(Err(LoginFailure::Throttled { retry_after_secs })) => {
                return Err(Refusal::TooManyRequests {
                    retry_after_secs,
                    message: LoginFailure::Throttled { retry_after_secs }
                        .message()
                        .to_owned(),
                });
            }
            Ok(Err(failure)) => {
                return Err(self.unauthorized(req, access, None, failure.message()));
            }
            Err(e) => return Err(unavailable(e)),
        };
        for needed in access {
            match needed {
                Access::Base => {}
                Access::Catalog => {
                    if !principal.can_system("catalog", "read") {
                        return Err(Refusal::Denied {
                            message: "only system administrators may list the catalog".into(),
                        });
                    }
                }
                Access::Repository { name, actions } => {
                    let project =
                        match wharf_projects::get_project_by_name(&self.inner.pool, name.project())
                            .await
                        {
                            Ok(project) => project,
                            Err(wharf_projects::Error::NotFound) => {
                                return Err(Refusal::NameUnknown);
                            }
                            Err(e) => return Err(unavailable(e.into())),
                        };
                    let rights = ProjectAccess::load(&self.inner.pool, &principal, project)
                        .await
                        .map_err(|e| unavailable(e.into()))?;
                    // A robot granted only repository access cannot read the
                    // project itself, yet it knows the project: it may pull.
                    if !rights.can_see() && !rights.allows("repository", "pull") {
                        return Err(Refusal::NameUnknown);
                    }
                    if let Some(refused) = actions
                        .iter()
                        .find(|a| !rights.allows("repository", a.as_str()))
                    {
                        return Err(Refusal::Denied {
                            message: format!(
                                "{} may not {} {}",
                                principal.audit_name(),
                                refused.as_str(),
                                name.as_str()
                            ),
                        });
                    }
                }
            }
        }
        Ok(seams::Principal {
            name: principal.name().map(str::to_owned),
            client_addr,
        })
    }

    async fn subject_still_active(&self, sub: &str) -> Result<bool, AuthError> {
        let inner: &Inner = &self.inner;
        if let Some(active) = inner.subjects.get(sub) {
            return Ok(active);
        }
        let active =
            recent::subject_is_active(&inner.pool, &inner.config.robot_prefix, sub).await?;
        inner.subjects.put(sub, active);
        Ok(active)
    }

    async fn project_created(&self, name: &str) -> Result<Option<i64>, AuthError> {
        let inner: &Inner = &self.inner;
        if let Some(created) = inner.projects.get(name) {
            return Ok(Some(created));
        }
        // Only existing projects are remembered: one made a moment ago must
        // be usable at once.
        let created = recent::project_created(&inner.pool, name).await?;
        if let Some(created) = created {
            inner.projects.put(name, created);
        }
        Ok(created)
    }
}

/// Whether the token's `access` claim allows `needed`.
fn covers(claims: &AccessClaims, needed: &Access) -> bool {
    let holds = |kind: &str, name: &str, action: &str| {
        claims.access.iter().any(|entry| {
            entry.kind == kind
                && entry.name == name
                && entry.actions.iter().any(|a| a == action || a == "*")
        })
    };
    match needed {
        Access::Base => true,
        Access::Catalog => holds("registry", "catalog", "*"),
        Access::Repository { name, actions } => actions
            .iter()
            .all(|action| holds("repository", name.as_str(), action.as_str())),
    }
}

#[async_trait(?Send)]
impl Authorizer for RegistryAuthorizer {
    async fn authorize(
        &self,
        req: &HttpRequest,
        access: &[Access],
    ) -> Result<seams::Principal, Refusal> {
        let auth = &self.0;
        let client_addr = auth.client_addr(req);
        match Credentials::of(req) {
            None => Err(auth.unauthorized(req, access, None, "authentication required")),
            Some(Credentials::Bearer(token)) => {
                auth.authorize_bearer(req, access, &token, client_addr)
                    .await
            }
            Some(Credentials::Basic { name, secret }) => {
                auth.authorize_basic(req, access, &name, &secret, client_addr)
                    .await
            }
            Some(Credentials::Unreadable) => Err(auth.unauthorized(
                req,
                access,
                Some("invalid_request"),
                "unreadable Authorization header",
            )),
        }
    }
}

impl Auth {
    /// The [`Authorizer`] to give the registry (`Registry::with_authorizer`).
    pub fn authorizer(&self) -> Arc<dyn Authorizer> {
        Arc::new(RegistryAuthorizer(self.clone()))
    }
}
