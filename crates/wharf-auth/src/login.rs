//! Checking a login name and password (or robot secret) under throttling:
//! the one path every login takes, whether it arrives at `/service/token`,
//! as Basic credentials on `/v2` or `/api/v2.0`, or at `/c/login`.

use wharf_projects::audit::{self, AuditEntry};
use wharf_projects::{LoginRefused, Principal};

use crate::Auth;
use crate::error::AuthError;
use crate::throttle;

/// Why a login was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Unknown name or wrong password/secret (never told apart).
    BadCredentials,
    /// The robot's secret matched, but the robot is disabled.
    RobotDisabled,
    /// The robot's secret matched, but the robot has expired.
    RobotExpired,
    /// Too many recent failures for this name or from this address; nothing
    /// was checked. Try again after this many seconds.
    Throttled { retry_after_secs: u64 },
}

impl LoginFailure {
    /// A message for the client that does not say which part was wrong.
    pub fn message(&self) -> &'static str {
        match self {
            LoginFailure::BadCredentials => "invalid username or password",
            LoginFailure::RobotDisabled => "the robot account is disabled",
            LoginFailure::RobotExpired => "the robot account has expired",
            LoginFailure::Throttled { .. } => "too many failed logins; try again later",
        }
    }
}

impl Auth {
    /// Check `name` and `secret` (a robot when `name` has the robot prefix)
    /// from `client_addr`, with throttling: a locked name or address is
    /// refused before anything is verified; a wrong password counts against
    /// both; success clears the name's count (not the address's, so one
    /// valid account cannot launder guesses at others).
    pub async fn login(
        &self,
        name: &str,
        secret: &str,
        client_addr: Option<&str>,
    ) -> Result<Result<Principal, LoginFailure>, AuthError> {
        let pool = &self.inner.pool;
        let user_key = throttle::user_key(name);
        let mut keys = vec![user_key.clone()];
        if let Some(addr) = client_addr {
            keys.push(throttle::address_key(addr));
        }
        if let Some(retry_after_secs) = throttle::locked(pool, &keys).await? {
            return Ok(Err(LoginFailure::Throttled { retry_after_secs }));
        }
        let prefix = &self.inner.config.robot_prefix;
        match wharf_projects::identify_basic(pool, prefix, name, secret).await? {
            Ok(principal) => {
                throttle::clear(pool, &user_key).await?;
                Ok(Ok(principal))
            }
            Err(LoginRefused::BadCredentials) => {
                self.count_failure(name, client_addr).await?;
                Ok(Err(LoginFailure::BadCredentials))
            }
            Err(LoginRefused::RobotDisabled) => Ok(Err(LoginFailure::RobotDisabled)),
            Err(LoginRefused::RobotExpired) => Ok(Err(LoginFailure::RobotExpired)),
        }
    }

    async fn count_failure(&self, name: &str, client_addr: Option<&str>) -> Result<(), AuthError> {
        let pool = &self.inner.pool;
        let limits = &self.inner.config.throttle;
        let mut locked = Vec::new();
        if throttle::record_failure(
            pool,
            limits,
            &throttle::user_key(name),
            limits.max_failures_per_user,
        )
        .await?
        {
            locked.push("the account".to_owned());
        }
        if let Some(addr) = client_addr
            && throttle::record_failure(
                pool,
                limits,
                &throttle::address_key(addr),
                limits.max_failures_per_address,
            )
            .await?
        {
            locked.push(format!("client address {addr}"));
        }
        if locked.is_empty() {
            return Ok(());
        }
        let description = format!(
            "login throttled: too many failed logins, {} locked for {} s",
            locked.join(" and "),
            limits.lockout_secs
        );
        tracing::warn!(user = name, client = client_addr, "{description}");
        audit::record(
            pool,
            &AuditEntry {
                project_id: None,
                username: name,
                operation: "login",
                description: &description,
                success: false,
                resource_type: "login",
                resource: name,
                client_addr,
            },
        )
        .await?;
        Ok(())
    }
}
