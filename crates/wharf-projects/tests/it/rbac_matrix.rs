//! The role matrix in code against Harbor's (`harbor-rbac.json`, when the
//! checkout has it) and against facts that must hold regardless.

use std::collections::BTreeSet;

use wharf_projects::rbac::SCANNER_PULL;
use wharf_projects::roles::{POLICIES, PUBLIC_PROJECT_POLICIES};
use wharf_projects::{Role, allowed};

const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/reference/harbor-rbac.json"
);

fn pairs(value: &serde_json::Value) -> BTreeSet<(String, String)> {
    value
        .as_array()
        .expect("an array of pairs")
        .iter()
        .map(|pair| {
            let pair = pair.as_array().expect("a [resource, action] pair");
            (
                pair[0].as_str().unwrap().to_owned(),
                pair[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn ours(role: Role) -> BTreeSet<(String, String)> {
    role.policies()
        .map(|(r, a)| (r.to_owned(), a.to_owned()))
        .collect()
}

#[test]
fn matrix_matches_harbor_reference_when_present() {
    let Ok(text) = std::fs::read_to_string(REFERENCE) else {
        eprintln!("{REFERENCE} not present; the hand-picked facts still run");
        return;
    };
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();

    let roles = reference["roles"].as_object().unwrap();
    assert_eq!(roles.len(), Role::ALL.len());
    for (name, policies) in roles {
        let role: Role = name.parse().unwrap();
        assert_eq!(
            reference["role_ids"][name].as_i64(),
            Some(i64::from(role.id())),
            "id of {name}"
        );
        let expected = pairs(policies);
        assert_eq!(ours(role), expected, "policies of {name}");
        assert_eq!(
            role.policies().count(),
            policies.as_array().unwrap().len(),
            "no duplicates for {name}"
        );
    }
    assert_eq!(POLICIES.len(), 75 + 53 + 36 + 20 + 14);

    let public: BTreeSet<(String, String)> = PUBLIC_PROJECT_POLICIES
        .iter()
        .map(|&(r, a)| (r.to_owned(), a.to_owned()))
        .collect();
    assert_eq!(
        public,
        pairs(&reference["publicProjectImplicit"]["policies"])
    );
    assert_eq!(PUBLIC_PROJECT_POLICIES.len(), public.len());

    assert_eq!(
        reference["systemAdmin"]["excluded_actions"],
        serde_json::json!([SCANNER_PULL])
    );
}

#[test]
fn allowed_is_the_union_of_roles_over_every_known_pair() {
    let universe: BTreeSet<(&str, &str)> = POLICIES
        .iter()
        .map(|&(_, r, a)| (r, a))
        .chain(PUBLIC_PROJECT_POLICIES.iter().copied())
        .collect();
    for &(resource, action) in &universe {
        for role in Role::ALL {
            assert_eq!(
                allowed(&[role], false, false, resource, action),
                role.can(resource, action),
                "{role} {resource}:{action}"
            );
            assert!(
                allowed(&[role], true, false, resource, action),
                "sysadmin {resource}:{action}"
            );
        }
        let both = allowed(
            &[Role::Guest, Role::Developer],
            false,
            false,
            resource,
            action,
        );
        assert_eq!(
            both,
            Role::Guest.can(resource, action) || Role::Developer.can(resource, action)
        );
        assert!(
            !allowed(&[], false, false, resource, action),
            "non-member {resource}:{action}"
        );
        assert_eq!(
            allowed(&[], false, true, resource, action),
            PUBLIC_PROJECT_POLICIES.contains(&(resource, action))
        );
    }
}

#[test]
fn hand_picked_harbor_facts() {
    use Role::*;
    let can =
        |role: Role, resource: &str, action: &str| allowed(&[role], false, false, resource, action);

    // Pull: every role.
    for role in Role::ALL {
        assert!(can(role, "repository", "pull"), "{role} pulls");
        assert!(can(role, "quota", "read"), "{role} reads quota");
        assert!(can(role, "", "read"), "{role} reads the project");
    }
    // Push: projectAdmin, maintainer, developer.
    for role in [ProjectAdmin, Maintainer, Developer] {
        assert!(can(role, "repository", "push"), "{role} pushes");
        assert!(can(role, "artifact", "create"));
        assert!(can(role, "tag", "create"));
        assert!(can(role, "tag-retention", "operate"));
    }
    for role in [Guest, LimitedGuest] {
        assert!(!can(role, "repository", "push"), "{role} must not push");
    }
    // Delete content: projectAdmin and maintainer only.
    assert!(can(Maintainer, "repository", "delete"));
    assert!(can(ProjectAdmin, "artifact", "delete"));
    assert!(!can(Developer, "repository", "delete"));
    assert!(!can(Developer, "tag", "delete"));
    // Members and robots: only projectAdmin manages them.
    for role in [Maintainer, Developer, Guest, LimitedGuest] {
        assert!(!can(role, "member", "create"), "{role}");
        assert!(!can(role, "robot", "create"), "{role}");
        assert!(!can(role, "", "delete"), "{role}");
        assert!(!can(role, "metadata", "update"), "{role}");
    }
    assert!(can(ProjectAdmin, "robot", "create"));
    assert!(can(ProjectAdmin, "member", "update"));
    assert!(can(Guest, "member", "list"));
    assert!(!can(LimitedGuest, "member", "list"));
    assert!(!can(LimitedGuest, "label", "list"));
    assert!(!can(LimitedGuest, "robot", "list"));
    // Nobody gets robot:update except projectAdmin; no one by role gets quota:update.
    assert!(!can(ProjectAdmin, "quota", "update"));
    // Webhooks: maintainer reads only.
    assert!(can(Maintainer, "notification-policy", "read"));
    assert!(!can(Maintainer, "notification-policy", "create"));
    // Unknown pairs are denied.
    assert!(!can(ProjectAdmin, "repository", "frobnicate"));
}

#[test]
fn public_projects_and_sysadmins() {
    // Anonymous on a public project: pull and browse, never push or delete.
    assert!(allowed(&[], false, true, "repository", "pull"));
    assert!(allowed(&[], false, true, "artifact", "list"));
    assert!(allowed(&[], false, true, "", "read"));
    assert!(!allowed(&[], false, true, "repository", "push"));
    assert!(!allowed(&[], false, true, "repository", "delete"));
    assert!(!allowed(&[], false, true, "member", "list"));
    // Anonymous on a private project: nothing.
    assert!(!allowed(&[], false, false, "repository", "pull"));
    // A public project does not take away what a role grants.
    assert!(allowed(
        &[Role::Developer],
        false,
        true,
        "repository",
        "push"
    ));
    // System admin: everything, except scanner-pull.
    assert!(allowed(&[], true, false, "repository", "delete"));
    assert!(allowed(&[], true, false, "user", "create"));
    assert!(!allowed(&[], true, false, "repository", SCANNER_PULL));
}

#[test]
fn role_names_and_ids_round_trip() {
    for role in Role::ALL {
        assert_eq!(Role::from_id(role.id()), Some(role));
        assert_eq!(role.name().parse::<Role>().unwrap(), role);
        assert_eq!(
            serde_json::to_string(&role).unwrap(),
            format!("\"{}\"", role.name())
        );
    }
    assert_eq!(Role::ProjectAdmin.id(), 1);
    assert_eq!(Role::Developer.id(), 2);
    assert_eq!(Role::Guest.id(), 3);
    assert_eq!(Role::Maintainer.id(), 4);
    assert_eq!(Role::LimitedGuest.id(), 5);
    assert_eq!(Role::from_id(0), None);
    assert!("admin".parse::<Role>().is_err());
}
