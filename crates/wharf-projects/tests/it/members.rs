//! Membership and the access decisions it leads to.

use wharf_projects::{
    Error, NewProject, ProjectName, Role, add_member, allowed, create_project, create_user,
    delete_user, get_project, list_members, member_roles, remove_member, update_member_role,
};

use crate::support::TestDb;
use crate::users::new_user;

/// What a user may do on a project, decided the way the token issuer will:
/// load roles and the public flag, then ask `allowed`.
async fn can(
    db: &TestDb,
    project_id: i64,
    user_id: Option<i64>,
    resource: &str,
    action: &str,
) -> bool {
    let project = get_project(&db.pool, project_id).await.unwrap();
    let (roles, sysadmin) = match user_id {
        Some(id) => (
            member_roles(&db.pool, project_id, id).await.unwrap(),
            wharf_projects::get_user(&db.pool, id)
                .await
                .unwrap()
                .sysadmin,
        ),
        None => (Vec::new(), false),
    };
    allowed(&roles, sysadmin, project.is_public(), resource, action)
}

#[tokio::test]
async fn each_role_gets_harbor_permissions_on_a_private_project() {
    let db = TestDb::new().await;
    let owner = create_user(&db.pool, &new_user("owner", None))
        .await
        .unwrap();
    let project = create_project(
        &db.pool,
        &NewProject::new(ProjectName::parse("team").unwrap(), owner.id),
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for role in [
        Role::Maintainer,
        Role::Developer,
        Role::Guest,
        Role::LimitedGuest,
    ] {
        let user = create_user(&db.pool, &new_user(role.name(), None))
            .await
            .unwrap();
        add_member(&db.pool, project.id, user.id, role)
            .await
            .unwrap();
        ids.push((role, user.id));
    }
    ids.push((Role::ProjectAdmin, owner.id));
    let outsider = create_user(&db.pool, &new_user("outsider", None))
        .await
        .unwrap();
    let mut admin = new_user("root", None);
    admin.sysadmin = true;
    let sysadmin = create_user(&db.pool, &admin).await.unwrap();

    // (resource, action, [projectAdmin, maintainer, developer, guest, limitedGuest])
    let expectations: &[(&str, &str, [bool; 5])] = &[
        ("repository", "pull", [true, true, true, true, true]),
        ("repository", "push", [true, true, true, false, false]),
        ("repository", "delete", [true, true, false, false, false]),
        ("member", "list", [true, true, true, true, false]),
        ("member", "create", [true, false, false, false, false]),
        ("robot", "create", [true, false, false, false, false]),
        ("metadata", "read", [true, true, false, false, false]),
        ("", "delete", [true, false, false, false, false]),
    ];
    for &(resource, action, expected) in expectations {
        for (role, expect) in [
            Role::ProjectAdmin,
            Role::Maintainer,
            Role::Developer,
            Role::Guest,
            Role::LimitedGuest,
        ]
        .into_iter()
        .zip(expected)
        {
            let user = ids.iter().find(|(r, _)| *r == role).unwrap().1;
            assert_eq!(
                can(&db, project.id, Some(user), resource, action).await,
                expect,
                "{role} {resource}:{action}"
            );
        }
        assert!(!can(&db, project.id, Some(outsider.id), resource, action).await);
        assert!(!can(&db, project.id, None, resource, action).await);
        assert!(can(&db, project.id, Some(sysadmin.id), resource, action).await);
    }
}

#[tokio::test]
async fn public_projects_let_anyone_pull_but_not_push() {
    let db = TestDb::new().await;
    let owner = create_user(&db.pool, &new_user("owner", None))
        .await
        .unwrap();
    let outsider = create_user(&db.pool, &new_user("outsider", None))
        .await
        .unwrap();
    let mut new = NewProject::new(ProjectName::parse("open").unwrap(), owner.id);
    new.public = true;
    let project = create_project(&db.pool, &new).await.unwrap();
    for who in [None, Some(outsider.id)] {
        assert!(can(&db, project.id, who, "repository", "pull").await);
        assert!(can(&db, project.id, who, "tag", "list").await);
        assert!(!can(&db, project.id, who, "repository", "push").await);
        assert!(!can(&db, project.id, who, "member", "list").await);
    }
}

#[tokio::test]
async fn membership_lifecycle() {
    let db = TestDb::new().await;
    let owner = create_user(&db.pool, &new_user("owner", None))
        .await
        .unwrap();
    let dev = create_user(&db.pool, &new_user("dev", None)).await.unwrap();
    let project = create_project(
        &db.pool,
        &NewProject::new(ProjectName::parse("team").unwrap(), owner.id),
    )
    .await
    .unwrap();

    add_member(&db.pool, project.id, dev.id, Role::Developer)
        .await
        .unwrap();
    assert!(matches!(
        add_member(&db.pool, project.id, dev.id, Role::Guest).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        add_member(&db.pool, project.id, 9999, Role::Guest).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        add_member(&db.pool, 9999, dev.id, Role::Guest).await,
        Err(Error::NotFound)
    ));

    let members = list_members(&db.pool, project.id).await.unwrap();
    let summary: Vec<_> = members
        .iter()
        .map(|m| (m.username.as_str(), m.role))
        .collect();
    assert_eq!(
        summary,
        [("dev", Role::Developer), ("owner", Role::ProjectAdmin)]
    );

    update_member_role(&db.pool, project.id, dev.id, Role::Maintainer)
        .await
        .unwrap();
    assert_eq!(
        member_roles(&db.pool, project.id, dev.id).await.unwrap(),
        [Role::Maintainer]
    );
    assert!(can(&db, project.id, Some(dev.id), "repository", "delete").await);

    remove_member(&db.pool, project.id, dev.id).await.unwrap();
    assert!(
        member_roles(&db.pool, project.id, dev.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        remove_member(&db.pool, project.id, dev.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        update_member_role(&db.pool, project.id, dev.id, Role::Guest).await,
        Err(Error::NotFound)
    ));

    // A deleted user loses every membership.
    add_member(&db.pool, project.id, dev.id, Role::Guest)
        .await
        .unwrap();
    delete_user(&db.pool, dev.id).await.unwrap();
    assert!(
        member_roles(&db.pool, project.id, dev.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(list_members(&db.pool, project.id).await.unwrap().len(), 1);
}
