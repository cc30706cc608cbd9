//! Labels in the domain layer: scopes and unique names, the artifact-side
//! functions other modules call (`labels_of`, `label_condition`,
//! `artifacts_with_labels`), attach/detach rules, and what
//! happens when labels, artifacts and projects go away.

use wharf_projects::labels::{
    AttachError, LabelMatch, LabelQuery, LabelScope, LabelSort, LabelText, artifacts_with_labels,
    attach_label, create_label, delete_label, detach_label, get_label, label_condition, labels_of,
    list_labels, update_label,
};
use wharf_projects::users::TextMatch;
use wharf_projects::{Error, NewProject, Page, ProjectName, create_project, create_user};

use crate::seed_artifacts::artifact;
use crate::support::TestDb;
use crate::users::new_user;

fn text(name: &str) -> LabelText {
    LabelText {
        name: name.into(),
        description: format!("about {name}"),
        color: "#00AA00".into(),
    }
}

async fn project(db: &TestDb, name: &str) -> i64 {
    let owner = match wharf_projects::get_user_by_name(&db.pool, "owner").await {
        Ok(user) => user,
        Err(_) => create_user(&db.pool, &new_user("owner", None))
            .await
            .unwrap(),
    };
    create_project(
        &db.pool,
        &NewProject::new(ProjectName::parse(name).unwrap(), owner.id),
    )
    .await
    .unwrap()
    .id
}

#[tokio::test]
async fn names_are_unique_per_scope_and_validated() {
    let db = TestDb::new().await;
    let alpha = project(&db, "alpha").await;
    let beta = project(&db, "beta").await;

    let global = create_label(&db.pool, &text("release"), LabelScope::Global)
        .await
        .unwrap();
    assert_eq!(global.scope, LabelScope::Global);
    assert_eq!(global.description, "about release");
    assert!(matches!(
        create_label(&db.pool, &text("release"), LabelScope::Global).await,
        Err(Error::Conflict(_))
    ));
    // The same name in a project, and in another project, is another label.
    let in_alpha = create_label(&db.pool, &text("release"), LabelScope::Project(alpha))
        .await
        .unwrap();
    create_label(&db.pool, &text("release"), LabelScope::Project(beta))
        .await
        .unwrap();
    assert!(matches!(
        create_label(&db.pool, &text("release"), LabelScope::Project(alpha)).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(get_label(&db.pool, in_alpha.id).await.unwrap(), in_alpha);

    // Renaming onto a taken name clashes; renaming elsewhere does not.
    let other = create_label(&db.pool, &text("qa"), LabelScope::Project(alpha))
        .await
        .unwrap();
    assert!(matches!(
        update_label(&db.pool, other.id, &text("release")).await,
        Err(Error::Conflict(_))
    ));
    let renamed = update_label(&db.pool, other.id, &text("staging"))
        .await
        .unwrap();
    assert_eq!(renamed.name, "staging");
    assert_eq!(renamed.scope, LabelScope::Project(alpha));
    assert!(renamed.updated_at >= other.updated_at);

    for bad in ["", &"x".repeat(129), "tab\there"] {
        assert!(
            matches!(
                create_label(&db.pool, &text(bad), LabelScope::Global).await,
                Err(Error::Invalid(_))
            ),
            "{bad:?} accepted"
        );
    }
    let long_color = LabelText {
        color: "#".repeat(17),
        ..text("colourful")
    };
    assert!(matches!(
        create_label(&db.pool, &long_color, LabelScope::Global).await,
        Err(Error::Invalid(_))
    ));
    assert!(
        create_label(&db.pool, &text(&"é".repeat(128)), LabelScope::Global)
            .await
            .is_ok(),
        "128 characters is the limit, not 128 bytes"
    );
    assert!(matches!(
        create_label(&db.pool, &text("orphan"), LabelScope::Project(999_999)).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        update_label(&db.pool, 999_999, &text("x")).await,
        Err(Error::NotFound)
    ));
}

#[tokio::test]
async fn listing_filters_by_scope_name_and_id_and_pages() {
    let db = TestDb::new().await;
    let alpha = project(&db, "alpha").await;
    for name in ["cherry", "apple", "banana"] {
        create_label(&db.pool, &text(name), LabelScope::Global)
            .await
            .unwrap();
    }
    let own = create_label(&db.pool, &text("apple-pie"), LabelScope::Project(alpha))
        .await
        .unwrap();

    let all = list_labels(&db.pool, &LabelQuery::new(LabelScope::Global))
        .await
        .unwrap();
    let names: Vec<&str> = all.items.iter().map(|l| l.name.as_str()).collect();
    assert_eq!((all.total, names), (3, vec!["apple", "banana", "cherry"]));

    let project = list_labels(&db.pool, &LabelQuery::new(LabelScope::Project(alpha)))
        .await
        .unwrap();
    assert_eq!(project.items, vec![own.clone()]);

    let fuzzy = list_labels(
        &db.pool,
        &LabelQuery {
            name: Some(TextMatch::Contains("AN".into())),
            ..LabelQuery::new(LabelScope::Global)
        },
    )
    .await
    .unwrap();
    assert_eq!(fuzzy.items.len(), 1, "case-insensitive: banana only");
    assert_eq!(fuzzy.items[0].name, "banana");

    let exact = list_labels(
        &db.pool,
        &LabelQuery {
            name: Some(TextMatch::Exact("appl".into())),
            ..LabelQuery::new(LabelScope::Global)
        },
    )
    .await
    .unwrap();
    assert_eq!(exact.total, 0);

    let by_id = list_labels(
        &db.pool,
        &LabelQuery {
            ids: Some(vec![all.items[2].id, own.id]),
            ..LabelQuery::new(LabelScope::Global)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        by_id.items,
        vec![all.items[2].clone()],
        "scope still applies"
    );

    let second = list_labels(
        &db.pool,
        &LabelQuery {
            sort: vec![(LabelSort::Name, true)],
            page: Page {
                page: 2,
                page_size: 2,
            },
            ..LabelQuery::new(LabelScope::Global)
        },
    )
    .await
    .unwrap();
    assert_eq!(second.total, 3);
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.items[0].name, "apple");
}

#[tokio::test]
async fn attach_rules_and_the_artifact_side_functions() {
    let db = TestDb::new().await;
    let alpha = project(&db, "alpha").await;
    let beta = project(&db, "beta").await;
    let app = artifact(&db.pool, "alpha/app", &["v1"], &[]).await;
    let tool = artifact(&db.pool, "alpha/tools/cli", &[], &[]).await;
    let other = artifact(&db.pool, "beta/app", &["v1"], &[]).await;

    let global = create_label(&db.pool, &text("zeta"), LabelScope::Global)
        .await
        .unwrap();
    let own = create_label(&db.pool, &text("alpha-only"), LabelScope::Project(alpha))
        .await
        .unwrap();
    let foreign = create_label(&db.pool, &text("beta-only"), LabelScope::Project(beta))
        .await
        .unwrap();

    assert_eq!(
        attach_label(&db.pool, app.id, global.id).await.unwrap(),
        global
    );
    attach_label(&db.pool, app.id, own.id).await.unwrap();
    attach_label(&db.pool, tool.id, own.id).await.unwrap();
    attach_label(&db.pool, other.id, global.id).await.unwrap();
    attach_label(&db.pool, other.id, foreign.id).await.unwrap();

    assert!(matches!(
        attach_label(&db.pool, app.id, global.id).await,
        Err(AttachError::AlreadyAttached)
    ));
    assert!(matches!(
        attach_label(&db.pool, app.id, foreign.id).await,
        Err(AttachError::LabelNotFound)
    ));
    assert!(matches!(
        attach_label(&db.pool, app.id, 999_999).await,
        Err(AttachError::LabelNotFound)
    ));
    assert!(matches!(
        attach_label(&db.pool, 999_999, global.id).await,
        Err(AttachError::ArtifactNotFound)
    ));

    // labels_of: per artifact, ordered by name; unlabelled ones absent.
    let bare = artifact(&db.pool, "alpha/app", &[], &[]).await;
    let map = labels_of(&db.pool, &[app.id, tool.id, other.id, bare.id])
        .await
        .unwrap();
    let names = |id: i64| -> Vec<String> {
        map.get(&id)
            .map(|ls| ls.iter().map(|l| l.name.clone()).collect())
            .unwrap_or_default()
    };
    assert_eq!(names(app.id), vec!["alpha-only", "zeta"]);
    assert_eq!(names(tool.id), vec!["alpha-only"]);
    assert_eq!(names(other.id), vec!["beta-only", "zeta"]);
    assert!(!map.contains_key(&bare.id));
    assert!(labels_of(&db.pool, &[]).await.unwrap().is_empty());

    // Filters: all of the labels, any of them, per repository or everywhere.
    let all = |ids: Vec<i64>, repo: Option<i64>| {
        let pool = db.pool.clone();
        async move {
            artifacts_with_labels(&pool, repo, &ids, LabelMatch::All)
                .await
                .unwrap()
        }
    };
    assert_eq!(all(vec![global.id, own.id], None).await, vec![app.id]);
    assert_eq!(all(vec![global.id], None).await, vec![app.id, other.id]);
    assert_eq!(
        all(vec![global.id], Some(other.repository_id)).await,
        vec![other.id]
    );
    assert_eq!(
        all(vec![], Some(app.repository_id)).await,
        vec![app.id, bare.id],
        "no labels asked for: every artifact"
    );
    let any = artifacts_with_labels(&db.pool, None, &[own.id, foreign.id], LabelMatch::Any)
        .await
        .unwrap();
    assert_eq!(any, vec![app.id, tool.id, other.id]);
    assert!(
        artifacts_with_labels(&db.pool, None, &[], LabelMatch::Any)
            .await
            .unwrap()
            .is_empty()
    );

    // The condition composes into a caller's own query.
    let sql = format!(
        "SELECT m.id FROM manifests m JOIN repositories r ON r.id = m.repository_id
         WHERE r.project = $1 AND {} ORDER BY m.id",
        label_condition("m.id", 2, LabelMatch::All)
    );
    let in_alpha: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind("alpha")
        .bind(vec![own.id])
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(in_alpha, vec![app.id, tool.id]);

    // Detach: once, then "not found".
    assert_eq!(
        detach_label(&db.pool, app.id, own.id).await.unwrap().id,
        own.id
    );
    assert!(matches!(
        detach_label(&db.pool, app.id, own.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        detach_label(&db.pool, app.id, 999_999).await,
        Err(Error::NotFound)
    ));
}

#[test]
#[should_panic(expected = "column reference")]
fn label_condition_refuses_anything_but_a_column() {
    label_condition("m.id); DROP TABLE labels; --", 1, LabelMatch::All);
}

#[tokio::test]
async fn deleting_detaches_and_deleted_things_disappear() {
    let db = TestDb::new().await;
    let alpha = project(&db, "alpha").await;
    let gone = project(&db, "gone").await;
    let a = artifact(&db.pool, "alpha/app", &["v1"], &[]).await;
    let b = artifact(&db.pool, "alpha/app", &["v2"], &[]).await;
    let label = create_label(&db.pool, &text("ship"), LabelScope::Project(alpha))
        .await
        .unwrap();
    let keep = create_label(&db.pool, &text("keep"), LabelScope::Global)
        .await
        .unwrap();
    for artifact in [&a, &b] {
        attach_label(&db.pool, artifact.id, label.id).await.unwrap();
        attach_label(&db.pool, artifact.id, keep.id).await.unwrap();
    }

    let deleted = delete_label(&db.pool, label.id).await.unwrap();
    assert_eq!((deleted.label.id, deleted.detached), (label.id, 2));
    assert!(matches!(
        get_label(&db.pool, label.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        delete_label(&db.pool, label.id).await,
        Err(Error::NotFound)
    ));
    let map = labels_of(&db.pool, &[a.id, b.id]).await.unwrap();
    assert_eq!(map[&a.id], vec![keep.clone()]);
    assert_eq!(map[&b.id], vec![keep.clone()]);

    // An artifact that goes takes its attachments with it.
    sqlx::query("DELETE FROM manifests WHERE id = $1")
        .bind(a.id)
        .execute(&db.pool)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM artifact_labels WHERE label_id = $1")
        .bind(keep.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, 1);

    // The labels of a (soft-)deleted project vanish with it.
    let doomed = create_label(&db.pool, &text("doomed"), LabelScope::Project(gone))
        .await
        .unwrap();
    wharf_projects::delete_project(&db.pool, gone)
        .await
        .unwrap();
    assert!(matches!(
        get_label(&db.pool, doomed.id).await,
        Err(Error::NotFound)
    ));
    assert_eq!(
        list_labels(&db.pool, &LabelQuery::new(LabelScope::Project(gone)))
            .await
            .unwrap()
            .total,
        0
    );
    assert!(matches!(
        update_label(&db.pool, doomed.id, &text("revived")).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        create_label(&db.pool, &text("late"), LabelScope::Project(gone)).await,
        Err(Error::NotFound)
    ));
}

#[tokio::test]
async fn concurrent_attaches_of_one_label_succeed_once() {
    let db = TestDb::new().await;
    project(&db, "alpha").await;
    let target = artifact(&db.pool, "alpha/app", &["v1"], &[]).await;
    let label = create_label(&db.pool, &text("once"), LabelScope::Global)
        .await
        .unwrap();
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let pool = db.pool.clone();
            let id = target.id;
            let label = label.id;
            tokio::spawn(async move { attach_label(&pool, id, label).await })
        })
        .collect();
    let mut attached = 0;
    let mut refused = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => attached += 1,
            Err(AttachError::AlreadyAttached) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((attached, refused), (1, 7));
    assert_eq!(
        labels_of(&db.pool, &[target.id]).await.unwrap()[&target.id].len(),
        1
    );
}
