//! Harbor's project roles and the permissions each one grants.
//!
//! [`POLICIES`] is the whole (role, resource, action) matrix of Harbor v2.16
//! (`rolePoliciesMap` in `src/common/rbac/project/rbac_role.go`), written out
//! as data so it can be read, diffed and tested against the reference copy in
//! `harbor-rbac.json`. Resources and actions keep Harbor's spelling; resource
//! `""` is the project itself.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A role a member holds in a project. The discriminant is the id Harbor
/// stores in `project_member.role` (and Wharf in `project_members.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[repr(i16)]
pub enum Role {
    /// Full control of the project: settings, members, robots, content.
    ProjectAdmin = 1,
    /// Pushes images and manages tag retention, CVE exports and artifact labels.
    Developer = 2,
    /// Reads and pulls.
    Guest = 3,
    /// Developer plus deleting content, scans, labels, immutability rules.
    Maintainer = 4,
    /// Pulls and reads content, but cannot see members, labels or robots.
    LimitedGuest = 5,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 5] = [
        Role::ProjectAdmin,
        Role::Maintainer,
        Role::Developer,
        Role::Guest,
        Role::LimitedGuest,
    ];

    /// Harbor's numeric role id.
    pub fn id(self) -> i16 {
        self as i16
    }

    /// The role with Harbor's numeric id, if any.
    pub fn from_id(id: i16) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.id() == id)
    }

    /// Harbor's name for the role (`projectAdmin`, `maintainer`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Role::ProjectAdmin => "projectAdmin",
            Role::Developer => "developer",
            Role::Guest => "guest",
            Role::Maintainer => "maintainer",
            Role::LimitedGuest => "limitedGuest",
        }
    }

    /// Whether this role alone grants `action` on `resource`.
    pub fn can(self, resource: &str, action: &str) -> bool {
        POLICIES
            .iter()
            .any(|&(role, res, act)| role == self && res == resource && act == action)
    }

    /// The (resource, action) pairs this role grants.
    pub fn policies(self) -> impl Iterator<Item = (&'static str, &'static str)> {
        POLICIES
            .iter()
            .filter(move |(role, _, _)| *role == self)
            .map(|&(_, res, act)| (res, act))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = Error;

    /// Parse Harbor's role name (`projectAdmin`, ..., `limitedGuest`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == s)
            .ok_or_else(|| Error::Invalid(format!("unknown role {s:?}")))
    }
}

/// Every (role, resource, action) a project role grants, from Harbor v2.16.
pub const POLICIES: &[(Role, &str, &str)] = &[
    // projectAdmin: 75
    (Role::ProjectAdmin, "", "read"),
    (Role::ProjectAdmin, "", "update"),
    (Role::ProjectAdmin, "", "delete"),
    (Role::ProjectAdmin, "member", "create"),
    (Role::ProjectAdmin, "member", "read"),
    (Role::ProjectAdmin, "member", "update"),
    (Role::ProjectAdmin, "member", "delete"),
    (Role::ProjectAdmin, "member", "list"),
    (Role::ProjectAdmin, "metadata", "create"),
    (Role::ProjectAdmin, "metadata", "read"),
    (Role::ProjectAdmin, "metadata", "update"),
    (Role::ProjectAdmin, "metadata", "delete"),
    (Role::ProjectAdmin, "log", "list"),
    (Role::ProjectAdmin, "label", "create"),
    (Role::ProjectAdmin, "label", "read"),
    (Role::ProjectAdmin, "label", "update"),
    (Role::ProjectAdmin, "label", "delete"),
    (Role::ProjectAdmin, "label", "list"),
    (Role::ProjectAdmin, "quota", "read"),
    (Role::ProjectAdmin, "repository", "create"),
    (Role::ProjectAdmin, "repository", "read"),
    (Role::ProjectAdmin, "repository", "update"),
    (Role::ProjectAdmin, "repository", "delete"),
    (Role::ProjectAdmin, "repository", "list"),
    (Role::ProjectAdmin, "repository", "pull"),
    (Role::ProjectAdmin, "repository", "push"),
    (Role::ProjectAdmin, "tag-retention", "create"),
    (Role::ProjectAdmin, "tag-retention", "read"),
    (Role::ProjectAdmin, "tag-retention", "update"),
    (Role::ProjectAdmin, "tag-retention", "delete"),
    (Role::ProjectAdmin, "tag-retention", "list"),
    (Role::ProjectAdmin, "tag-retention", "operate"),
    (Role::ProjectAdmin, "immutable-tag", "create"),
    (Role::ProjectAdmin, "immutable-tag", "update"),
    (Role::ProjectAdmin, "immutable-tag", "delete"),
    (Role::ProjectAdmin, "immutable-tag", "list"),
    (Role::ProjectAdmin, "configuration", "read"),
    (Role::ProjectAdmin, "configuration", "update"),
    (Role::ProjectAdmin, "robot", "create"),
    (Role::ProjectAdmin, "robot", "read"),
    (Role::ProjectAdmin, "robot", "update"),
    (Role::ProjectAdmin, "robot", "delete"),
    (Role::ProjectAdmin, "robot", "list"),
    (Role::ProjectAdmin, "notification-policy", "create"),
    (Role::ProjectAdmin, "notification-policy", "update"),
    (Role::ProjectAdmin, "notification-policy", "delete"),
    (Role::ProjectAdmin, "notification-policy", "list"),
    (Role::ProjectAdmin, "notification-policy", "read"),
    (Role::ProjectAdmin, "scan", "create"),
    (Role::ProjectAdmin, "scan", "read"),
    (Role::ProjectAdmin, "scan", "stop"),
    (Role::ProjectAdmin, "sbom", "create"),
    (Role::ProjectAdmin, "sbom", "stop"),
    (Role::ProjectAdmin, "sbom", "read"),
    (Role::ProjectAdmin, "scanner", "read"),
    (Role::ProjectAdmin, "scanner", "create"),
    (Role::ProjectAdmin, "artifact", "create"),
    (Role::ProjectAdmin, "artifact", "read"),
    (Role::ProjectAdmin, "artifact", "delete"),
    (Role::ProjectAdmin, "artifact", "list"),
    (Role::ProjectAdmin, "artifact-addition", "read"),
    (Role::ProjectAdmin, "tag", "list"),
    (Role::ProjectAdmin, "tag", "create"),
    (Role::ProjectAdmin, "tag", "delete"),
    (Role::ProjectAdmin, "accessory", "list"),
    (Role::ProjectAdmin, "artifact-label", "create"),
    (Role::ProjectAdmin, "artifact-label", "delete"),
    (Role::ProjectAdmin, "preheat-policy", "create"),
    (Role::ProjectAdmin, "preheat-policy", "read"),
    (Role::ProjectAdmin, "preheat-policy", "update"),
    (Role::ProjectAdmin, "preheat-policy", "delete"),
    (Role::ProjectAdmin, "preheat-policy", "list"),
    (Role::ProjectAdmin, "export-cve", "create"),
    (Role::ProjectAdmin, "export-cve", "read"),
    (Role::ProjectAdmin, "export-cve", "list"),
    // maintainer: 53
    (Role::Maintainer, "", "read"),
    (Role::Maintainer, "member", "read"),
    (Role::Maintainer, "member", "list"),
    (Role::Maintainer, "metadata", "read"),
    (Role::Maintainer, "quota", "read"),
    (Role::Maintainer, "label", "create"),
    (Role::Maintainer, "label", "read"),
    (Role::Maintainer, "label", "update"),
    (Role::Maintainer, "label", "delete"),
    (Role::Maintainer, "label", "list"),
    (Role::Maintainer, "repository", "create"),
    (Role::Maintainer, "repository", "read"),
    (Role::Maintainer, "repository", "update"),
    (Role::Maintainer, "repository", "delete"),
    (Role::Maintainer, "repository", "list"),
    (Role::Maintainer, "repository", "push"),
    (Role::Maintainer, "repository", "pull"),
    (Role::Maintainer, "tag-retention", "create"),
    (Role::Maintainer, "tag-retention", "read"),
    (Role::Maintainer, "tag-retention", "update"),
    (Role::Maintainer, "tag-retention", "delete"),
    (Role::Maintainer, "tag-retention", "list"),
    (Role::Maintainer, "tag-retention", "operate"),
    (Role::Maintainer, "accessory", "list"),
    (Role::Maintainer, "immutable-tag", "create"),
    (Role::Maintainer, "immutable-tag", "update"),
    (Role::Maintainer, "immutable-tag", "delete"),
    (Role::Maintainer, "immutable-tag", "list"),
    (Role::Maintainer, "configuration", "read"),
    (Role::Maintainer, "robot", "read"),
    (Role::Maintainer, "robot", "list"),
    (Role::Maintainer, "notification-policy", "read"),
    (Role::Maintainer, "notification-policy", "list"),
    (Role::Maintainer, "scan", "create"),
    (Role::Maintainer, "scan", "read"),
    (Role::Maintainer, "scan", "stop"),
    (Role::Maintainer, "sbom", "create"),
    (Role::Maintainer, "sbom", "stop"),
    (Role::Maintainer, "sbom", "read"),
    (Role::Maintainer, "scanner", "read"),
    (Role::Maintainer, "artifact", "create"),
    (Role::Maintainer, "artifact", "read"),
    (Role::Maintainer, "artifact", "delete"),
    (Role::Maintainer, "artifact", "list"),
    (Role::Maintainer, "artifact-addition", "read"),
    (Role::Maintainer, "tag", "list"),
    (Role::Maintainer, "tag", "create"),
    (Role::Maintainer, "tag", "delete"),
    (Role::Maintainer, "artifact-label", "create"),
    (Role::Maintainer, "artifact-label", "delete"),
    (Role::Maintainer, "export-cve", "create"),
    (Role::Maintainer, "export-cve", "read"),
    (Role::Maintainer, "export-cve", "list"),
    // developer: 36
    (Role::Developer, "", "read"),
    (Role::Developer, "member", "read"),
    (Role::Developer, "member", "list"),
    (Role::Developer, "label", "read"),
    (Role::Developer, "label", "list"),
    (Role::Developer, "quota", "read"),
    (Role::Developer, "repository", "create"),
    (Role::Developer, "repository", "read"),
    (Role::Developer, "repository", "update"),
    (Role::Developer, "repository", "list"),
    (Role::Developer, "repository", "push"),
    (Role::Developer, "repository", "pull"),
    (Role::Developer, "tag-retention", "create"),
    (Role::Developer, "tag-retention", "read"),
    (Role::Developer, "tag-retention", "update"),
    (Role::Developer, "tag-retention", "delete"),
    (Role::Developer, "tag-retention", "list"),
    (Role::Developer, "tag-retention", "operate"),
    (Role::Developer, "configuration", "read"),
    (Role::Developer, "robot", "read"),
    (Role::Developer, "robot", "list"),
    (Role::Developer, "scan", "read"),
    (Role::Developer, "sbom", "read"),
    (Role::Developer, "scanner", "read"),
    (Role::Developer, "artifact", "create"),
    (Role::Developer, "artifact", "read"),
    (Role::Developer, "artifact", "list"),
    (Role::Developer, "artifact-addition", "read"),
    (Role::Developer, "tag", "list"),
    (Role::Developer, "tag", "create"),
    (Role::Developer, "accessory", "list"),
    (Role::Developer, "artifact-label", "create"),
    (Role::Developer, "artifact-label", "delete"),
    (Role::Developer, "export-cve", "create"),
    (Role::Developer, "export-cve", "read"),
    (Role::Developer, "export-cve", "list"),
    // guest: 20
    (Role::Guest, "", "read"),
    (Role::Guest, "member", "read"),
    (Role::Guest, "member", "list"),
    (Role::Guest, "label", "read"),
    (Role::Guest, "label", "list"),
    (Role::Guest, "quota", "read"),
    (Role::Guest, "repository", "read"),
    (Role::Guest, "repository", "list"),
    (Role::Guest, "repository", "pull"),
    (Role::Guest, "configuration", "read"),
    (Role::Guest, "robot", "read"),
    (Role::Guest, "robot", "list"),
    (Role::Guest, "scan", "read"),
    (Role::Guest, "sbom", "read"),
    (Role::Guest, "scanner", "read"),
    (Role::Guest, "tag", "list"),
    (Role::Guest, "accessory", "list"),
    (Role::Guest, "artifact", "read"),
    (Role::Guest, "artifact", "list"),
    (Role::Guest, "artifact-addition", "read"),
    // limitedGuest: 14
    (Role::LimitedGuest, "", "read"),
    (Role::LimitedGuest, "quota", "read"),
    (Role::LimitedGuest, "repository", "list"),
    (Role::LimitedGuest, "repository", "read"),
    (Role::LimitedGuest, "repository", "pull"),
    (Role::LimitedGuest, "configuration", "read"),
    (Role::LimitedGuest, "scan", "read"),
    (Role::LimitedGuest, "sbom", "read"),
    (Role::LimitedGuest, "scanner", "read"),
    (Role::LimitedGuest, "tag", "list"),
    (Role::LimitedGuest, "accessory", "list"),
    (Role::LimitedGuest, "artifact", "read"),
    (Role::LimitedGuest, "artifact", "list"),
    (Role::LimitedGuest, "artifact-addition", "read"),
];

/// What every visitor of a public project gets, anonymous ones included
/// (Harbor's `publicProjectPolicies`, `src/common/rbac/project/rbac_util.go`).
pub const PUBLIC_PROJECT_POLICIES: &[(&str, &str)] = &[
    ("", "read"),
    ("label", "read"),
    ("label", "list"),
    ("repository", "list"),
    ("repository", "pull"),
    ("scan", "read"),
    ("scanner", "read"),
    ("tag", "list"),
    ("artifact", "read"),
    ("artifact", "list"),
    ("artifact-addition", "read"),
    ("accessory", "list"),
];
