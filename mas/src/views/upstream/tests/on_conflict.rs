//! `on_conflict`: a fixed username that a local account has.

use super::*;

fn on_conflict(value: &'static str) -> impl FnOnce(&mut Value) {
    move |provider| provider["claims_imports"]["localpart"]["on_conflict"] = json!(value)
}

async fn link_for(app: &TestApp, user: &crate::model::User, subject: &str) {
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let mut rng = app.state.rng.fork();
    upstream_links::add_upstream_link(
        &mut conn,
        &app.clock,
        &mut rng,
        upstream_links::NewUpstreamLink {
            provider_id: PROVIDER_ID,
            subject,
            user_id: Some(user.id),
            human_account_name: None,
        },
    )
    .await
    .unwrap();
}

async fn on_conflict_add_links_the_existing_user(db: Database) {
    let (fake, app) = setup_with(db, on_conflict("add")).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    link_for(&app, &alice, "earlier-subject").await;
    let mut browser = app.browser();
    let response = login_through(&fake, &mut browser, AUTHORIZE).await;
    assert_eq!(location(&response), "/auth/");
    let mut links = links_of(&app, &alice).await;
    links.sort();
    assert_eq!(links, ["alice", "earlier-subject"]);
    let counts = counts(&app).await;
    assert_eq!((counts.users, counts.jobs, counts.emails), (1, 0, 0));
    assert!(
        browser
            .get("/auth/")
            .await
            .text()
            .contains("@alice:example.com")
    );
}

async fn on_conflict_set_links_only_a_user_without_a_link(db: Database) {
    let (fake, app) = setup_with(db, on_conflict("set")).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    link_for(&app, &alice, "earlier-subject").await;
    let log = LogCapture::start();
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_page(&response, StatusCode::CONFLICT, &["\"alice\""]);
    log.assert_refusal("localpart_conflict");
    drop(log);
    assert_eq!(links_of(&app, &alice).await, ["earlier-subject"]);

    let bob = app.user_with_password("bob", "correct horse").await;
    fake.set_user(json!({ "sub": "bob-sub", "preferred_username": "bob" }));
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_eq!(location(&response), "/auth/");
    assert_eq!(links_of(&app, &bob).await, ["bob-sub"]);
}

async fn on_conflict_replace_detaches_the_users_other_link(db: Database) {
    let (fake, app) = setup_with(db, on_conflict("replace")).await;
    let alice = app.user_with_password("alice", "correct horse").await;
    link_for(&app, &alice, "earlier-subject").await;
    let response = login_through(&fake, &mut app.browser(), AUTHORIZE).await;
    assert_eq!(location(&response), "/auth/");
    assert_eq!(links_of(&app, &alice).await, ["alice"]);
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let old =
        upstream_links::find_upstream_link_by_subject(&mut conn, PROVIDER_ID, "earlier-subject")
            .await
            .unwrap()
            .unwrap();
    assert_eq!(old.user_id, None, "detached");
}

sqlite_tests!(
    on_conflict_add_links_the_existing_user,
    on_conflict_set_links_only_a_user_without_a_link,
    on_conflict_replace_detaches_the_users_other_link,
);
