//! Users: the first-start admin, password policy, uniqueness, login.

use wharf_projects::{
    ADMIN, Error, NewUser, Page, UserProfile, UserQuery, Username, authenticate, create_user,
    delete_user, ensure_admin, get_user_by_name, list_users, password, set_password, set_sysadmin,
    update_profile,
};

use crate::support::TestDb;

pub fn new_user<'a>(name: &str, email: Option<&'a str>) -> NewUser<'a> {
    NewUser {
        username: Username::parse(name).unwrap(),
        email,
        realname: "Test User",
        comment: "",
        password: "Harbor12345",
        sysadmin: false,
    }
}

#[tokio::test]
async fn admin_is_created_once_with_a_generated_password_that_works() {
    let db = TestDb::new().await;
    let generated = ensure_admin(&db.pool, None)
        .await
        .unwrap()
        .expect("first start generates a password");
    assert!(password::check_policy(&generated).is_ok());

    let admin = authenticate(&db.pool, ADMIN, &generated)
        .await
        .unwrap()
        .expect("generated password logs in");
    assert!(admin.sysadmin);

    // Second start: nothing changes, nothing to print, the old password still works.
    assert_eq!(ensure_admin(&db.pool, None).await.unwrap(), None);
    assert_eq!(
        ensure_admin(&db.pool, Some("Other12345")).await.unwrap(),
        None
    );
    assert!(
        authenticate(&db.pool, ADMIN, &generated)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        authenticate(&db.pool, ADMIN, "Other12345")
            .await
            .unwrap()
            .is_none()
    );
    let all = list_users(&db.pool, &UserQuery::default()).await.unwrap();
    assert_eq!(all.total, 1);
}

#[tokio::test]
async fn admin_takes_the_configured_password_subject_to_policy() {
    let db = TestDb::new().await;
    assert!(matches!(
        ensure_admin(&db.pool, Some("weak")).await,
        Err(Error::Invalid(_))
    ));
    assert_eq!(
        ensure_admin(&db.pool, Some("Harbor12345")).await.unwrap(),
        None
    );
    assert!(
        authenticate(&db.pool, ADMIN, "Harbor12345")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn password_policy_errors_are_clear() {
    let db = TestDb::new().await;
    let mut user = new_user("alice", None);
    user.password = "password";
    let Err(Error::Invalid(msg)) = create_user(&db.pool, &user).await else {
        panic!("weak password accepted");
    };
    assert_eq!(
        msg,
        "the password must contain an uppercase letter, contain a digit"
    );

    let alice = create_user(&db.pool, &new_user("alice", None))
        .await
        .unwrap();
    assert!(matches!(
        set_password(&db.pool, alice.id, "Sh0rt").await,
        Err(Error::Invalid(msg)) if msg.contains("8 to 128 characters")
    ));
    set_password(&db.pool, alice.id, "NewPassw0rd")
        .await
        .unwrap();
    assert!(
        authenticate(&db.pool, "alice", "Harbor12345")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        authenticate(&db.pool, "alice", "NewPassw0rd")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn usernames_and_emails_are_unique_among_live_users() {
    let db = TestDb::new().await;
    let alice = create_user(&db.pool, &new_user("alice", Some("alice@example.com")))
        .await
        .unwrap();
    assert!(matches!(
        create_user(&db.pool, &new_user("alice", None)).await,
        Err(Error::Conflict(msg)) if msg.contains("username alice")
    ));
    assert!(matches!(
        create_user(&db.pool, &new_user("alice2", Some("ALICE@example.com"))).await,
        Err(Error::Conflict(msg)) if msg.contains("e-mail")
    ));
    let bob = create_user(&db.pool, &new_user("bob", Some("bob@example.com")))
        .await
        .unwrap();
    let profile = UserProfile {
        email: Some("alice@example.com"),
        realname: "Bob",
        comment: "",
    };
    assert!(matches!(
        update_profile(&db.pool, bob.id, &profile).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        create_user(&db.pool, &new_user("carol", Some("not-an-email"))).await,
        Err(Error::Invalid(_))
    ));

    // Deleting frees the name and e-mail and stops logins.
    delete_user(&db.pool, alice.id).await.unwrap();
    assert!(matches!(
        get_user_by_name(&db.pool, "alice").await,
        Err(Error::NotFound)
    ));
    assert!(
        authenticate(&db.pool, "alice", "Harbor12345")
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        delete_user(&db.pool, alice.id).await,
        Err(Error::NotFound)
    ));
    let again = create_user(&db.pool, &new_user("alice", Some("alice@example.com")))
        .await
        .unwrap();
    assert_ne!(again.id, alice.id);
}

#[tokio::test]
async fn profile_sysadmin_and_listing() {
    let db = TestDb::new().await;
    for name in ["ann", "bea", "cat_1", "cat_2"] {
        create_user(&db.pool, &new_user(name, None)).await.unwrap();
    }
    let cats = list_users(
        &db.pool,
        &UserQuery {
            username_contains: Some("CAT_".into()),
            page: Page::default(),
        },
    )
    .await
    .unwrap();
    assert_eq!(cats.total, 2);
    assert_eq!(cats.items[0].username, "cat_1");
    // `_` matches literally, not as a LIKE wildcard.
    let none = list_users(
        &db.pool,
        &UserQuery {
            username_contains: Some("n_".into()),
            page: Page::default(),
        },
    )
    .await
    .unwrap();
    assert_eq!(none.total, 0);
    let page2 = list_users(
        &db.pool,
        &UserQuery {
            username_contains: None,
            page: Page {
                page: 2,
                page_size: 3,
            },
        },
    )
    .await
    .unwrap();
    assert_eq!((page2.total, page2.items.len()), (4, 1));

    let ann = get_user_by_name(&db.pool, "ann").await.unwrap();
    assert!(!ann.sysadmin);
    set_sysadmin(&db.pool, ann.id, true).await.unwrap();
    let updated = update_profile(
        &db.pool,
        ann.id,
        &UserProfile {
            email: Some("ann@example.com"),
            realname: "Ann",
            comment: "ops",
        },
    )
    .await
    .unwrap();
    assert!(updated.sysadmin);
    assert_eq!(updated.email.as_deref(), Some("ann@example.com"));
    assert_eq!(
        (updated.realname.as_str(), updated.comment.as_str()),
        ("Ann", "ops")
    );
    assert!(matches!(
        set_sysadmin(&db.pool, 9999, true).await,
        Err(Error::NotFound)
    ));
    assert!(
        authenticate(&db.pool, "nobody", "Harbor12345")
            .await
            .unwrap()
            .is_none()
    );
}
