//! Tag retention: a project's policy of rules that say which artifacts to
//! keep, and the runs (manual, dry or scheduled) that delete the rest.
//!
//! The model is Harbor's (`/retentions`). A policy holds up to
//! [`MAX_RULES`] rules; each rule has a template (`latestPushedK`,
//! `nDaysSinceLastPull`, `always`, ...) with its parameter, tag selectors
//! and repository selectors (doublestar patterns, [`crate::selectors`]).
//! A run works repository by repository ([`job`]):
//!
//! - a repository is *in scope* when the repository selectors of at least
//!   one enabled rule select it (by its name inside the project, `a/x` for
//!   `proj/a/x`); repositories no rule selects are not touched;
//! - the *candidates* are the artifacts the repository lists (accessories
//!   and untagged index children go with the artifact they belong to);
//! - each rule of the repository keeps the candidates its tag selectors
//!   select and its template picks ([`evaluate`]); an artifact is kept when
//!   any rule keeps it, and every other candidate is deleted;
//! - an artifact carrying an immutable tag is never deleted: it is counted
//!   as retained and the log says which rule protects it.
//!
//! A dry run evaluates the same way and deletes nothing; its task logs list
//! exactly what a real run would delete. Deletions go through
//! `wharf_registry::Registry::delete`, so admission (immutability, quota
//! release) and the audit log see them as they see `/v2` deletes.

pub mod evaluate;
pub mod job;
pub mod policy;
pub mod store;

pub use evaluate::{Candidate, Verdict, evaluate};
pub use job::RetentionJob;
pub use policy::{
    MAX_RULES, PolicyDocument, PolicySpec, Rule, RuleDocument, ScopeDocument, SelectorDocument,
    TagSelector, Template, TriggerDocument,
};
pub use store::{Policy, Task, TaskStatus};

/// The job kind (and execution kind) of retention runs.
pub const KIND: &str = "retention";

/// The name of a policy's schedule in `job_schedules`.
pub fn schedule_name(policy_id: i64) -> String {
    format!("retention:{policy_id}")
}

/// The project metadata key that names a project's policy.
pub const METADATA_KEY: &str = "retention_id";

/// Who the registry and the audit log see deleting: retention runs act on
/// no one's behalf.
pub const ACTOR: &str = "tag-retention";
