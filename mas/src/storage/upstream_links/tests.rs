//! Tests of `upstream_oauth_links`, on both backends: round trip, one link per provider and
//! subject, binding once, and detaching a user's links for `on_conflict: replace`.

use super::*;
use crate::storage::Database;
use crate::storage::testing::{TestDb, migrated, test_on_both_backends};

const PROVIDER: &str = "01J00000000000000000PR0V1D";
const OTHER_PROVIDER: &str = "01J00000000000000000OTHER0";

fn new_link<'a>(
    provider_id: &'a str,
    subject: &'a str,
    user_id: Option<Ulid>,
) -> NewUpstreamLink<'a> {
    NewUpstreamLink {
        provider_id,
        subject,
        user_id,
        human_account_name: Some("alice@idp"),
    }
}

async fn add(t: &mut TestDb, new: NewUpstreamLink<'_>) -> UpstreamLink {
    add_upstream_link(&mut t.conn, &t.clock, &mut t.rng, new)
        .await
        .unwrap()
}

async fn created_link_round_trips(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let link = add(&mut t, new_link(PROVIDER, "sub-1", Some(alice.id))).await;
    assert_eq!(link.user_id, Some(alice.id));
    assert_eq!(link.human_account_name.as_deref(), Some("alice@idp"));
    assert_eq!(
        find_upstream_link(&mut t.conn, link.id).await.unwrap(),
        Some(link.clone())
    );
    assert_eq!(
        find_upstream_link_by_subject(&mut t.conn, PROVIDER, "sub-1")
            .await
            .unwrap(),
        Some(link.clone())
    );
    assert_eq!(
        find_upstream_link_by_subject(&mut t.conn, OTHER_PROVIDER, "sub-1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        find_upstream_link(&mut t.conn, Ulid::nil()).await.unwrap(),
        None
    );
    assert_eq!(count_upstream_links(&mut t.conn).await.unwrap(), 1);
}

async fn a_subject_is_linked_once_per_provider(db: Database) {
    let mut t = migrated(db).await;
    add(&mut t, new_link(PROVIDER, "sub-1", None)).await;
    let error = add_upstream_link(
        &mut t.conn,
        &t.clock,
        &mut t.rng,
        new_link(PROVIDER, "sub-1", None),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, StorageError::UpstreamLinkExists),
        "{error:?}"
    );
    // The same subject at another provider is another person.
    add(&mut t, new_link(OTHER_PROVIDER, "sub-1", None)).await;
    assert_eq!(count_upstream_links(&mut t.conn).await.unwrap(), 2);
}

async fn an_unbound_link_is_bound_once(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let link = add(&mut t, new_link(PROVIDER, "sub-1", None)).await;
    assert_eq!(link.user_id, None);
    assert!(
        bind_upstream_link(&mut t.conn, link.id, alice.id)
            .await
            .unwrap()
    );
    assert!(
        !bind_upstream_link(&mut t.conn, link.id, bob.id)
            .await
            .unwrap()
    );
    assert!(
        !bind_upstream_link(&mut t.conn, Ulid::nil(), bob.id)
            .await
            .unwrap()
    );
    let found = find_upstream_link(&mut t.conn, link.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user_id, Some(alice.id));

    // Detached, it can be bound to someone else.
    assert!(unbind_upstream_link(&mut t.conn, link.id).await.unwrap());
    assert!(!unbind_upstream_link(&mut t.conn, link.id).await.unwrap());
    assert!(
        bind_upstream_link(&mut t.conn, link.id, bob.id)
            .await
            .unwrap()
    );
}

async fn a_users_links_are_listed_and_detached_per_provider(db: Database) {
    let mut t = migrated(db).await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let first = add(&mut t, new_link(PROVIDER, "sub-1", Some(alice.id))).await;
    t.clock.advance(std::time::Duration::from_millis(1));
    let second = add(&mut t, new_link(PROVIDER, "sub-2", Some(alice.id))).await;
    let elsewhere = add(&mut t, new_link(OTHER_PROVIDER, "sub-1", Some(alice.id))).await;
    let bobs = add(&mut t, new_link(PROVIDER, "sub-3", Some(bob.id))).await;

    let listed = list_user_upstream_links(&mut t.conn, alice.id, PROVIDER)
        .await
        .unwrap();
    let ids: Vec<Ulid> = listed.iter().map(|link| link.id).collect();
    assert_eq!(ids, vec![first.id, second.id]);

    let detached = unbind_user_upstream_links(&mut t.conn, alice.id, PROVIDER, Some(second.id))
        .await
        .unwrap();
    assert_eq!(detached, 1);
    let listed = list_user_upstream_links(&mut t.conn, alice.id, PROVIDER)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, second.id);
    for (id, user) in [
        (first.id, None),
        (elsewhere.id, Some(alice.id)),
        (bobs.id, Some(bob.id)),
    ] {
        let link = find_upstream_link(&mut t.conn, id).await.unwrap().unwrap();
        assert_eq!(link.user_id, user);
    }
    assert_eq!(
        unbind_user_upstream_links(&mut t.conn, alice.id, PROVIDER, None)
            .await
            .unwrap(),
        1
    );
}

test_on_both_backends!(
    created_link_round_trips,
    a_subject_is_linked_once_per_provider,
    an_unbound_link_is_bound_once,
    a_users_links_are_listed_and_detached_per_provider,
);
