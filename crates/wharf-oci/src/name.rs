//! Repository names, tags and references, validated to the distribution spec grammar.
//!
//! The parsers are hand-written against the spec's regular expressions; each
//! rejection says which rule was broken and restates the grammar, because the
//! message ends up in front of a user who typed the name.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The distribution spec's repository name grammar, quoted in error messages.
pub const NAME_GRAMMAR: &str =
    r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*";
/// The distribution spec's tag grammar, quoted in error messages.
pub const TAG_GRAMMAR: &str = "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}";
/// Longest repository name Wharf accepts, in bytes (all valid names are ASCII).
pub const MAX_NAME_LEN: usize = 255;
/// Longest tag the grammar allows.
pub const MAX_TAG_LEN: usize = 128;

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, total ≤ 255
/// characters (clients cap host + `/` + name at 255; Wharf caps the name at 255).
/// The first component is the project (Harbor), so a name needs at least... one component;
/// `project()` is the first component, `repository_in_project()` the rest (may be empty for
/// single-component names).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

/// What follows `/manifests/`: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A tag (the reference had no `:`).
    Tag(Tag),
    /// A digest (the reference contained `:`).
    Digest(crate::Digest),
}

/// Why a repository name, tag or reference was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The repository name breaks the grammar; `reason` says where.
    #[error(
        "invalid repository name {name:?}: {reason}; a name is one or more '/'-separated \
         components of lowercase letters and digits, optionally joined by '.', '_', '__' \
         or runs of '-' (grammar: {NAME_GRAMMAR})"
    )]
    InvalidName {
        /// The rejected input.
        name: String,
        /// What was wrong, e.g. "component 2 is empty".
        reason: String,
    },
    /// The repository name is longer than [`MAX_NAME_LEN`].
    #[error("repository name is {len} characters long; the limit is {max}")]
    NameTooLong {
        /// Length of the rejected input in bytes.
        len: usize,
        /// The limit ([`MAX_NAME_LEN`]).
        max: usize,
    },
    /// The tag breaks the grammar; `reason` says where.
    #[error(
        "invalid tag {tag:?}: {reason}; a tag is 1 to 128 letters, digits, '_', '.' or '-', \
         not starting with '.' or '-' (grammar: {TAG_GRAMMAR})"
    )]
    InvalidTag {
        /// The rejected input (truncated to 256 characters if longer).
        tag: String,
        /// What was wrong.
        reason: String,
    },
    /// The reference contains `:` so it must be a digest, and it is not a valid one.
    #[error("invalid digest reference {reference:?}: {source}")]
    InvalidDigest {
        /// The rejected input.
        reference: String,
        /// Why the digest was rejected.
        source: DigestError,
    },
}

/// Keep error messages bounded when a client sends something enormous.
fn shorten(s: &str) -> String {
    const LIMIT: usize = 256;
    if s.len() <= LIMIT {
        return s.to_owned();
    }
    let mut end = LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Check one path component against `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
/// Returns a description of the first problem.
fn check_component(component: &str) -> Result<(), String> {
    let bytes = component.as_bytes();
    if bytes.is_empty() {
        return Err("it is empty".to_owned());
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        // A run of [a-z0-9]+.
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            // Only possible at the very start: a separator is always checked to be
            // followed by a letter or digit.
            return Err(match bytes[i] {
                b if b.is_ascii_uppercase() => {
                    format!(
                        "it contains uppercase {:?}; names must be lowercase",
                        b as char
                    )
                }
                b'.' | b'_' | b'-' => format!(
                    "it starts with {:?}; separators must sit between letters or digits",
                    bytes[i] as char
                ),
                _ => format!("it contains {:?}", char_at(component, i)),
            });
        }
        if i == bytes.len() {
            return Ok(());
        }
        // A separator: '.', '_', '__' or '-'+.
        let sep_start = i;
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            b if b.is_ascii_uppercase() => {
                return Err(format!(
                    "it contains uppercase {:?}; names must be lowercase",
                    b as char
                ));
            }
            _ => return Err(format!("it contains {:?}", char_at(component, i))),
        }
        let separator = &component[sep_start..i];
        if i == bytes.len() {
            return Err(format!("it ends with separator {separator:?}"));
        }
        if !alnum(bytes[i]) {
            let next = char_at(component, i);
            return Err(if matches!(next, '.' | '_' | '-') {
                format!(
                    "separator {:?} is not allowed; use '.', '_', '__' or '-'s between letters or digits",
                    &component[sep_start..=i]
                )
            } else if next.is_ascii_uppercase() {
                format!("it contains uppercase {next:?}; names must be lowercase")
            } else {
                format!("it contains {next:?}")
            });
        }
    }
}

fn char_at(s: &str, byte_index: usize) -> char {
    s[byte_index..].chars().next().unwrap_or('\u{fffd}')
}

impl RepositoryName {
    /// Validate `s` against the distribution spec's name grammar and the 255-character
    /// limit. Accepts single-component names.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let invalid = |reason: String| NameError::InvalidName {
            name: shorten(s),
            reason,
        };
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::NameTooLong {
                len: s.len(),
                max: MAX_NAME_LEN,
            });
        }
        if s.is_empty() {
            return Err(invalid("it is empty".to_owned()));
        }
        if s.starts_with('/') {
            return Err(invalid("it starts with '/'".to_owned()));
        }
        if s.ends_with('/') {
            return Err(invalid("it ends with '/'".to_owned()));
        }
        for (index, component) in s.split('/').enumerate() {
            if let Err(problem) = check_component(component) {
                let reason = if component.is_empty() {
                    format!("component {} is empty (\"//\")", index + 1)
                } else {
                    format!(
                        "component {} ({:?}): {problem}",
                        index + 1,
                        shorten(component)
                    )
                };
                return Err(invalid(reason));
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as given (already canonical: grammar-valid names are lowercase ASCII).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first path component: the Harbor project the repository belongs to.
    pub fn project(&self) -> &str {
        self.0
            .split_once('/')
            .map_or(self.0.as_str(), |(project, _)| project)
    }

    /// Everything after the first component and its `/`; empty for single-component names.
    pub fn repository_in_project(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, rest)| rest)
    }

    /// The `/`-separated components, in order (at least one, none empty).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl Tag {
    /// Validate `s` against `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let invalid = |reason: String| NameError::InvalidTag {
            tag: shorten(s),
            reason,
        };
        let Some(first) = s.chars().next() else {
            return Err(invalid("it is empty".to_owned()));
        };
        if s.len() > MAX_TAG_LEN {
            return Err(invalid(format!(
                "it is {} characters long; the limit is {MAX_TAG_LEN}",
                s.len()
            )));
        }
        if !(first.is_ascii_alphanumeric() || first == '_') {
            return Err(invalid(format!("it starts with {first:?}")));
        }
        if let Some(bad) = s
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(invalid(format!("it contains {bad:?}")));
        }
        Ok(Self(s.to_owned()))
    }

    /// The tag as given (tags are case-sensitive).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Reference {
    /// A reference containing `:` must be a valid digest; anything else must be a valid tag.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.contains(':') {
            Digest::parse(s)
                .map(Reference::Digest)
                .map_err(|source| NameError::InvalidDigest {
                    reference: shorten(s),
                    source,
                })
        } else {
            Tag::parse(s).map(Reference::Tag)
        }
    }

    /// The tag, if this reference is one.
    pub fn as_tag(&self) -> Option<&Tag> {
        match self {
            Reference::Tag(tag) => Some(tag),
            Reference::Digest(_) => None,
        }
    }

    /// The digest, if this reference is one.
    pub fn as_digest(&self) -> Option<&Digest> {
        match self {
            Reference::Tag(_) => None,
            Reference::Digest(digest) => Some(digest),
        }
    }
}

impl From<Tag> for Reference {
    /// Wraps the tag.
    fn from(tag: Tag) -> Self {
        Reference::Tag(tag)
    }
}

impl From<Digest> for Reference {
    /// Wraps the digest.
    fn from(digest: Digest) -> Self {
        Reference::Digest(digest)
    }
}

impl fmt::Display for RepositoryName {
    /// Writes the name as parsed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Tag {
    /// Writes the tag as parsed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Reference {
    /// Writes the tag, or the digest as `<alg>:<hex>`; [`Reference::parse`] round-trips it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(tag) => tag.fmt(f),
            Reference::Digest(digest) => digest.fmt(f),
        }
    }
}

impl AsRef<str> for RepositoryName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Tag {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// `FromStr`, `Serialize` (as the string) and `Deserialize` (string, validated by `parse`).
macro_rules! string_forms {
    ($ty:ty) => {
        impl FromStr for $ty {
            type Err = NameError;

            /// Same as `parse`.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl serde::Serialize for $ty {
            /// Serializes as the display string.
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            /// Deserializes from a string, validated by `parse`.
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_forms!(RepositoryName);
string_forms!(Tag);
string_forms!(Reference);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for name in [
            "a",
            "library/ubuntu",
            "project/team/app",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "0",
            "9abc/x-y.z__w_v",
            "foo.bar/baz",
            "a/b/c/d/e/f/g",
        ] {
            let parsed = RepositoryName::parse(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(parsed.as_str(), name);
            assert_eq!(parsed.to_string(), name);
        }
    }

    #[test]
    fn rejects_invalid_names() {
        for name in [
            "",
            "/",
            "/a",
            "a/",
            "a//b",
            "..",
            "a/../b",
            "a..b",
            "a._b",
            "a___b",
            "a_-b",
            "-a",
            "a-",
            ".a",
            "a.",
            "_a",
            "a_",
            "Library/ubuntu",
            "library/Ubuntu",
            "a%2Fb",
            "a b",
            "a:b",
            "a@b",
            "a\u{e9}",
            "a/-b",
            "a\\b",
        ] {
            match RepositoryName::parse(name) {
                Err(NameError::InvalidName { name: n, reason }) => {
                    assert_eq!(n, name);
                    assert!(!reason.is_empty());
                }
                other => panic!("{name:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn name_length_limit() {
        let ok = "a".repeat(255);
        assert!(RepositoryName::parse(&ok).is_ok());
        let nested = format!("{}/{}", "a".repeat(127), "b".repeat(127));
        assert_eq!(nested.len(), 255);
        assert!(RepositoryName::parse(&nested).is_ok());
        assert_eq!(
            RepositoryName::parse(&"a".repeat(256)),
            Err(NameError::NameTooLong { len: 256, max: 255 })
        );
        assert!(matches!(
            RepositoryName::parse(&"a".repeat(300)),
            Err(NameError::NameTooLong { len: 300, .. })
        ));
    }

    #[test]
    fn name_errors_explain_the_problem() {
        let msg = RepositoryName::parse("Foo/bar").unwrap_err().to_string();
        assert!(msg.contains("uppercase"), "{msg}");
        assert!(msg.contains(NAME_GRAMMAR), "{msg}");
        let msg = RepositoryName::parse("a//b").unwrap_err().to_string();
        assert!(msg.contains("component 2 is empty"), "{msg}");
        let msg = RepositoryName::parse("a%2Fb").unwrap_err().to_string();
        assert!(msg.contains("'%'"), "{msg}");
        let msg = RepositoryName::parse("a/b..c").unwrap_err().to_string();
        assert!(msg.contains("\"..\""), "{msg}");
        let msg = RepositoryName::parse("a/b-").unwrap_err().to_string();
        assert!(msg.contains("ends with separator"), "{msg}");
    }

    #[test]
    fn project_and_rest() {
        let n = RepositoryName::parse("proj/team/app").unwrap();
        assert_eq!(n.project(), "proj");
        assert_eq!(n.repository_in_project(), "team/app");
        assert_eq!(n.components().collect::<Vec<_>>(), ["proj", "team", "app"]);
        let single = RepositoryName::parse("solo").unwrap();
        assert_eq!(single.project(), "solo");
        assert_eq!(single.repository_in_project(), "");
    }

    #[test]
    fn tags() {
        for tag in [
            "latest",
            "v1.2.3",
            "_",
            "A",
            "a-b_c.D",
            "1",
            &"x".repeat(128),
            "sha256-abc",
        ] {
            assert_eq!(Tag::parse(tag).unwrap().as_str(), tag);
        }
        for tag in [
            "",
            ".hidden",
            "-dash",
            "a:b",
            "a/b",
            "a b",
            "a+b",
            "tag\u{e9}",
            &"x".repeat(129),
        ] {
            assert!(
                matches!(Tag::parse(tag), Err(NameError::InvalidTag { .. })),
                "{tag:?}"
            );
        }
        let msg = Tag::parse(&"x".repeat(500)).unwrap_err().to_string();
        assert!(msg.contains("limit is 128"), "{msg}");
        assert!(msg.len() < 800, "message not bounded: {}", msg.len());
    }

    #[test]
    fn references() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let digest = format!("sha256:{hex}");
        match Reference::parse(&digest).unwrap() {
            Reference::Digest(d) => assert_eq!(d.hex(), hex),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Reference::parse("latest").unwrap(),
            Reference::Tag(_)
        ));
        assert!(matches!(
            Reference::parse("sha256:ABC"),
            Err(NameError::InvalidDigest {
                source: DigestError::BadHex { .. },
                ..
            })
        ));
        assert!(matches!(
            Reference::parse("latest:1"),
            Err(NameError::InvalidDigest {
                source: DigestError::UnsupportedAlgorithm(_),
                ..
            })
        ));
        assert!(matches!(
            Reference::parse("bad tag"),
            Err(NameError::InvalidTag { .. })
        ));
        assert_eq!(Reference::parse(&digest).unwrap().to_string(), digest);
        assert_eq!(
            Reference::parse("v1").unwrap().as_tag().unwrap().as_str(),
            "v1"
        );
        assert!(Reference::parse(&digest).unwrap().as_digest().is_some());
    }

    #[test]
    fn serde_string_forms() {
        let n: RepositoryName = serde_json::from_str("\"a/b\"").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"a/b\"");
        assert!(serde_json::from_str::<RepositoryName>("\"A/b\"").is_err());
        let t: Tag = serde_json::from_str("\"v1\"").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"v1\"");
        let r: Reference = serde_json::from_str("\"v1\"").unwrap();
        assert_eq!(r, Reference::Tag(t));
        assert!("Bad/Name".parse::<RepositoryName>().is_err());
    }
}
