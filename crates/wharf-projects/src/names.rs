//! Validated names for projects and users, following Harbor's rules so that
//! names accepted by Harbor are accepted here and the other way round.

use std::fmt;

use crate::error::{Error, Result};

/// A project name: 1–255 characters matching `[a-z0-9]+(?:[._-][a-z0-9]+)*`
/// (Harbor's `src/pkg/project/manager.go`): lowercase letters and digits in
/// runs separated by single `.`, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectName(String);

impl ProjectName {
    /// The longest accepted project name.
    pub const MAX_LEN: usize = 255;

    /// Check `name` against Harbor's project-name rule.
    pub fn parse(name: &str) -> Result<Self> {
        if name.is_empty() || name.len() > Self::MAX_LEN {
            return Err(Error::Invalid(format!(
                "project name must be 1 to {} characters long",
                Self::MAX_LEN
            )));
        }
        let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let is_sep = |b: u8| matches!(b, b'.' | b'_' | b'-');
        let bytes = name.as_bytes();
        let mut previous_was_sep = true; // the name must not start with a separator
        for &b in bytes {
            if is_alnum(b) {
                previous_was_sep = false;
            } else if is_sep(b) && !previous_was_sep {
                previous_was_sep = true;
            } else {
                return Err(Error::Invalid(format!(
                    "project name {name:?} is invalid: use lowercase letters and digits, \
                     separated by single '.', '_' or '-', starting and ending with a letter or digit"
                )));
            }
        }
        if previous_was_sep {
            return Err(Error::Invalid(format!(
                "project name {name:?} must end with a lowercase letter or digit"
            )));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ProjectName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A local username: 1–255 characters without Harbor's forbidden characters
/// `,"~#%$` (`common.IllegalCharsInUsername`). Wharf also refuses control
/// characters, `:` (it would make HTTP Basic credentials ambiguous) and
/// leading or trailing whitespace, which Harbor lets through.
///
/// Because `$` is forbidden, no user can take a robot account's name
/// (`robot$...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    /// The longest accepted username, in characters.
    pub const MAX_LEN: usize = 255;
    /// Characters Harbor refuses in usernames.
    pub const FORBIDDEN: &'static str = ",\"~#%$";

    /// Check `name` against the username rules.
    pub fn parse(name: &str) -> Result<Self> {
        let len = name.chars().count();
        if len == 0 || len > Self::MAX_LEN {
            return Err(Error::Invalid(format!(
                "username must be 1 to {} characters long",
                Self::MAX_LEN
            )));
        }
        if name.trim() != name {
            return Err(Error::Invalid(
                "username must not start or end with whitespace".into(),
            ));
        }
        if let Some(c) = name
            .chars()
            .find(|c| Self::FORBIDDEN.contains(*c) || *c == ':' || c.is_control())
        {
            return Err(Error::Invalid(format!(
                "username must not contain {c:?} (forbidden: {} and ':')",
                Self::FORBIDDEN
            )));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Check an e-mail address loosely (one `@` with text on both sides, no
/// whitespace, at most 255 characters): enough to catch typos, not a full
/// RFC 5322 parser. Returns the address unchanged.
pub fn validate_email(email: &str) -> Result<&str> {
    let ok = email.len() <= 255
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if ok {
        Ok(email)
    } else {
        Err(Error::Invalid(format!(
            "{email:?} is not a valid e-mail address"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_follow_harbor() {
        for ok in [
            "library",
            "a",
            "0",
            "my-app",
            "a.b_c-d",
            "x1.2.3",
            &"a".repeat(255),
        ] {
            assert!(ProjectName::parse(ok).is_ok(), "{ok} should be valid");
        }
        for bad in [
            "",
            "Library",
            "-a",
            "a-",
            "a--b",
            "a._b",
            ".a",
            "a b",
            "a/b",
            "ü",
            &"a".repeat(256),
        ] {
            assert!(ProjectName::parse(bad).is_err(), "{bad} should be invalid");
        }
    }

    #[test]
    fn usernames_follow_harbor() {
        for ok in ["admin", "Alice Smith", "bob@example.com", "渡辺", "a.b-c_d"] {
            assert!(Username::parse(ok).is_ok(), "{ok} should be valid");
        }
        for bad in [
            "",
            "robot$ci",
            "a,b",
            "a\"b",
            "a~b",
            "a#b",
            "a%b",
            "a:b",
            " a",
            "a\n",
            &"a".repeat(256),
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn emails_are_checked_loosely() {
        assert!(validate_email("a@b.c").is_ok());
        for bad in ["", "a", "@b", "a@", "a b@c", "a@b@c"] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }
}
