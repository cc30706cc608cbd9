//! Projects: names, creation, metadata, visibility, deletion, `library`.

use std::collections::BTreeMap;

use wharf_projects::{
    Error, LIBRARY, NewProject, Page, ProjectName, ProjectQuery, Role, Visibility, create_project,
    create_user, delete_metadata, delete_project, ensure_admin, ensure_library_project,
    get_project, get_project_by_name, list_projects, member_roles, set_metadata, set_storage_limit,
};

use crate::support::TestDb;
use crate::users::new_user;

#[tokio::test]
async fn library_is_public_owned_by_admin_and_created_once() {
    let db = TestDb::new().await;
    ensure_admin(&db.pool, Some("Harbor12345")).await.unwrap();
    let library = ensure_library_project(&db.pool).await.unwrap();
    assert_eq!(library.name, LIBRARY);
    assert_eq!(library.owner_name, "admin");
    assert!(library.is_public());
    assert_eq!(library.storage_limit, -1);
    let again = ensure_library_project(&db.pool).await.unwrap();
    assert_eq!(again.id, library.id);
    let anonymous = list_projects(
        &db.pool,
        &ProjectQuery {
            visibility: Visibility::PublicOnly,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(anonymous.total, 1);
    assert_eq!(anonymous.items[0].name, LIBRARY);
}

#[tokio::test]
async fn creation_validates_and_makes_the_owner_project_admin() {
    let db = TestDb::new().await;
    let owner = create_user(&db.pool, &new_user("owner", None))
        .await
        .unwrap();
    assert!(matches!(
        ProjectName::parse("My-Project"),
        Err(Error::Invalid(_))
    ));

    let mut new = NewProject::new(ProjectName::parse("team-a").unwrap(), owner.id);
    new.metadata.insert("auto_scan".into(), "true".into());
    new.metadata.insert("severity".into(), "high".into());
    new.storage_limit = 1 << 30;
    let project = create_project(&db.pool, &new).await.unwrap();
    assert!(!project.is_public());
    assert_eq!(project.metadata["public"], "false");
    assert_eq!(project.metadata["auto_scan"], "true");
    assert_eq!(project.metadata["severity"], "high");
    assert_eq!(project.storage_limit, 1 << 30);
    assert_eq!(project.owner_name, "owner");
    assert_eq!(
        member_roles(&db.pool, project.id, owner.id).await.unwrap(),
        vec![Role::ProjectAdmin]
    );

    assert!(matches!(
        create_project(&db.pool, &new).await,
        Err(Error::Conflict(msg)) if msg == "The project named team-a already exists"
    ));
    let mut bad = NewProject::new(ProjectName::parse("team-b").unwrap(), owner.id);
    bad.metadata.insert("severity".into(), "extreme".into());
    assert!(matches!(
        create_project(&db.pool, &bad).await,
        Err(Error::Invalid(_))
    ));
    bad.metadata.clear();
    bad.metadata.insert("colour".into(), "blue".into());
    assert!(matches!(
        create_project(&db.pool, &bad).await,
        Err(Error::Invalid(_))
    ));
    bad.metadata.clear();
    bad.storage_limit = -2;
    assert!(matches!(
        create_project(&db.pool, &bad).await,
        Err(Error::Invalid(_))
    ));
    let orphan = NewProject::new(ProjectName::parse("team-c").unwrap(), 424242);
    assert!(matches!(
        create_project(&db.pool, &orphan).await,
        Err(Error::Invalid(_))
    ));
    assert_eq!(
        list_projects(&db.pool, &ProjectQuery::default())
            .await
            .unwrap()
            .total,
        1
    );
}

#[tokio::test]
async fn metadata_and_quota_updates() {
    let db = TestDb::new().await;
    let owner = create_user(&db.pool, &new_user("owner", None))
        .await
        .unwrap();
    let project = create_project(
        &db.pool,
        &NewProject::new(ProjectName::parse("apps").unwrap(), owner.id),
    )
    .await
    .unwrap();

    let changes = BTreeMap::from([
        ("public".to_owned(), "true".to_owned()),
        ("prevent_vul".to_owned(), "true".to_owned()),
        ("reuse_sys_cve_allowlist".to_owned(), "false".to_owned()),
    ]);
    let updated = set_metadata(&db.pool, project.id, &changes).await.unwrap();
    assert!(updated.is_public());
    assert_eq!(updated.metadata.len(), 3);
    assert!(updated.updated_at >= project.updated_at);

    let bad = BTreeMap::from([("public".to_owned(), "yes".to_owned())]);
    assert!(matches!(
        set_metadata(&db.pool, project.id, &bad).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        set_metadata(&db.pool, 999, &changes).await,
        Err(Error::NotFound)
    ));

    delete_metadata(&db.pool, project.id, "prevent_vul")
        .await
        .unwrap();
    assert!(matches!(
        delete_metadata(&db.pool, project.id, "prevent_vul").await,
        Err(Error::NotFound)
    ));
    set_storage_limit(&db.pool, project.id, 5_000)
        .await
        .unwrap();
    let reread = get_project_by_name(&db.pool, "apps").await.unwrap();
    assert_eq!(reread.storage_limit, 5_000);
    assert!(!reread.metadata.contains_key("prevent_vul"));
    assert!(reread.is_public());
}

#[tokio::test]
async fn listing_respects_visibility_and_filters() {
    let db = TestDb::new().await;
    let owner = create_user(&db.pool, &new_user("owner", None))
        .await
        .unwrap();
    let member = create_user(&db.pool, &new_user("member", None))
        .await
        .unwrap();
    let outsider = create_user(&db.pool, &new_user("outsider", None))
        .await
        .unwrap();
    let mut public = NewProject::new(ProjectName::parse("open").unwrap(), owner.id);
    public.public = true;
    create_project(&db.pool, &public).await.unwrap();
    let secret = create_project(
        &db.pool,
        &NewProject::new(ProjectName::parse("secret").unwrap(), owner.id),
    )
    .await
    .unwrap();
    create_project(
        &db.pool,
        &NewProject::new(ProjectName::parse("secret-2").unwrap(), owner.id),
    )
    .await
    .unwrap();
    wharf_projects::add_member(&db.pool, secret.id, member.id, Role::Guest)
        .await
        .unwrap();

    let names = |listing: wharf_projects::Listing<wharf_projects::Project>| {
        listing
            .items
            .into_iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
    };
    let query = |visibility| ProjectQuery {
        visibility,
        ..Default::default()
    };
    assert_eq!(
        names(
            list_projects(&db.pool, &query(Visibility::All))
                .await
                .unwrap()
        ),
        ["open", "secret", "secret-2"]
    );
    assert_eq!(
        names(
            list_projects(&db.pool, &query(Visibility::User(member.id)))
                .await
                .unwrap()
        ),
        ["open", "secret"]
    );
    assert_eq!(
        names(
            list_projects(&db.pool, &query(Visibility::User(outsider.id)))
                .await
                .unwrap()
        ),
        ["open"]
    );
    let private_named_secret = ProjectQuery {
        visibility: Visibility::All,
        name_contains: Some("secret".into()),
        public: Some(false),
        page: Page {
            page: 1,
            page_size: 1,
        },
    };
    let listing = list_projects(&db.pool, &private_named_secret)
        .await
        .unwrap();
    assert_eq!(listing.total, 2);
    assert_eq!(names(listing), ["secret"]);
}

#[tokio::test]
async fn deletion_refuses_projects_with_repositories_and_frees_the_name() {
    let db = TestDb::new().await;
    let owner = create_user(&db.pool, &new_user("owner", None))
        .await
        .unwrap();
    let new = NewProject::new(ProjectName::parse("gone").unwrap(), owner.id);
    let project = create_project(&db.pool, &new).await.unwrap();

    sqlx::query("INSERT INTO repositories (name, project) VALUES ('gone/app', 'gone')")
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(matches!(
        delete_project(&db.pool, project.id).await,
        Err(Error::Conflict(msg)) if msg.contains("contains repositories")
    ));
    sqlx::query("DELETE FROM repositories WHERE project = 'gone'")
        .execute(&db.pool)
        .await
        .unwrap();

    delete_project(&db.pool, project.id).await.unwrap();
    assert!(matches!(
        get_project(&db.pool, project.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        delete_project(&db.pool, project.id).await,
        Err(Error::NotFound)
    ));
    assert!(
        member_roles(&db.pool, project.id, owner.id)
            .await
            .unwrap()
            .is_empty()
    );
    let again = create_project(&db.pool, &new).await.unwrap();
    assert_ne!(again.id, project.id);
}
