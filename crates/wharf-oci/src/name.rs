//! Repository names, tags and references, validated to the distribution spec grammar.

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
pub enum Reference { Tag(Tag), Digest(crate::Digest) }

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError { /* InvalidName(String), InvalidTag(String), InvalidReference(String), TooLong ... */ }

impl RepositoryName {
    pub fn parse(s: &str) -> Result<Self, NameError> { unimplemented!() }
    pub fn as_str(&self) -> &str { &self.0 }
    pub fn project(&self) -> &str { unimplemented!() }
}
impl Tag { pub fn parse(s: &str) -> Result<Self, NameError> { unimplemented!() } pub fn as_str(&self) -> &str { &self.0 } }
impl Reference { pub fn parse(s: &str) -> Result<Self, NameError> { unimplemented!() } }
// + Display for all three; serde as strings.
