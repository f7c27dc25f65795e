//! The store contract of message history (API.md "Message history"), on both stores:
//! newest-first pages with cursors at any depth, conversations by their latest message,
//! writes, and no conversation or message reachable from another workspace.

use std::collections::HashSet;
use std::sync::Arc;

use origin::error::Error;
use origin::store::messages::{Author, NewMessage};
use origin::store::{Read, Store};
use serde_json::json;
use shared::message_search::MessageSearch;
use shared::messages::{ConversationQuery, MessagePage, MessageQuery};
use shared::{ContactId, ConversationId, MessageId, UserId};
use sqlx::PgPool;

use crate::contract::{contract, TempSqlite};
use crate::helpers::*;

contract!(
    message_pages_walk_a_conversation_newest_first,
    conversations_come_latest_message_first,
    posts_edits_and_deletes_change_what_pages_show,
    no_conversation_or_message_crosses_workspaces,
    message_search_finds_words_prefixes_and_phrases_newest_first,
);

fn query(pairs: &[(&str, &str)], conversation: i64) -> MessageQuery {
    MessageQuery::from_pairs(
        pairs.iter().copied(),
        &ws(WS),
        ConversationId(conversation),
        &cursor_key(),
    )
    .expect("query")
}

async fn page(store: &Arc<dyn Store>, q: &MessageQuery) -> MessagePage {
    store
        .messages(Read::Primary, &ws(WS), q)
        .await
        .expect("page")
}

/// Every message id of a conversation, newest first, by walking its pages of `limit`.
async fn walk(store: &Arc<dyn Store>, conversation: i64, limit: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut q = query(&[("limit", limit)], conversation);
    loop {
        let p = page(store, &q).await;
        ids.extend(p.messages.iter().map(|m| m.id));
        assert_eq!(p.pagination.has_more, p.pagination.next_cursor.is_some());
        let Some(next) = p.pagination.next_cursor else {
            return ids;
        };
        q = query(&[("limit", limit), ("before", &next)], conversation);
    }
}

/// A member (`user`) or, with `admin`, an admin of the workspace.
fn by(user: &str, admin: bool) -> Author {
    Author {
        user: UserId::parse(user).expect("valid"),
        admin,
        integration: false,
    }
}

fn message(body: &str) -> NewMessage {
    serde_json::from_value(json!({"sender_type": "agent", "sender_id": "user_3", "body": body}))
        .expect("message")
}

async fn seed_history(store: &Arc<dyn Store>) -> Vec<i64> {
    store.seed(&ws(WS), 60, 1).await.expect("seed");
    store.seed(&ws(OTHER_WS), 20, 1).await.expect("seed other");
    store
        .seed_messages(&ws(OTHER_WS), 2, 30)
        .await
        .expect("other history");
    let seeded = store.seed_messages(&ws(WS), 4, 250).await.expect("history");
    assert_eq!(seeded.messages, 250);
    assert_eq!(seeded.conversations.len(), 4);
    seeded.conversations
}

async fn message_pages_walk_a_conversation_newest_first(store: Arc<dyn Store>) {
    let conversations = seed_history(&store).await;
    let long = conversations[0];
    let by_40 = walk(&store, long, "40").await;
    assert_eq!(
        by_40.len(),
        125,
        "the first conversation holds half the messages"
    );
    assert!(
        by_40.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
    assert_eq!(
        walk(&store, long, "7").await,
        by_40,
        "any page size, same messages"
    );
    let head = page(&store, &query(&[], long)).await;
    assert_eq!(head.pagination.limit, 50);
    assert_eq!(head.messages.len(), 50);
    assert!(head
        .messages
        .windows(2)
        .all(|w| w[0].created_at >= w[1].created_at));
    let mut all: HashSet<i64> = by_40.into_iter().collect();
    for c in &conversations[1..] {
        let ids = walk(&store, *c, "100").await;
        assert!(
            ids.iter().all(|id| all.insert(*id)),
            "a message is in one conversation"
        );
    }
    assert_eq!(all.len(), 250);
}

async fn conversations_come_latest_message_first(store: Arc<dyn Store>) {
    let seeded = seed_history(&store).await;
    let list = |pairs: Vec<(&'static str, String)>| {
        let store = store.clone();
        async move {
            let q = ConversationQuery::from_pairs(
                pairs.iter().map(|(k, v)| (*k, v.as_str())),
                &ws(WS),
                &cursor_key(),
            )
            .expect("query");
            store
                .conversations(Read::Primary, &ws(WS), &q)
                .await
                .expect("conversations")
        }
    };
    let mut walked = Vec::new();
    let mut pairs = vec![("limit", "3".to_owned())];
    loop {
        let p = list(pairs.clone()).await;
        walked.extend(p.conversations);
        let Some(next) = p.pagination.next_cursor else {
            break;
        };
        pairs = vec![("limit", "3".to_owned()), ("cursor", next)];
    }
    let ids: HashSet<i64> = walked.iter().map(|c| c.id).collect();
    assert_eq!(ids, seeded.iter().copied().collect());
    assert!(walked
        .windows(2)
        .all(|w| w[0].last_message_at >= w[1].last_message_at));

    let oldest = walked.last().expect("a conversation").clone();
    store
        .post_message(&ws(WS), ConversationId(oldest.id), &message("bump"))
        .await
        .expect("post");
    let first = list(vec![]).await.conversations[0].clone();
    assert_eq!(
        first.id, oldest.id,
        "a new message moves its conversation first"
    );
    let contact = list(vec![("contact_id", oldest.contact_id.to_string())]).await;
    assert!(contact
        .conversations
        .iter()
        .all(|c| c.contact_id == oldest.contact_id));
    assert!(!contact.conversations.is_empty());
    for status in ["open", "resolved"] {
        let only = list(vec![("status", status.to_owned())]).await;
        assert!(only.conversations.iter().all(|c| c.status == status));
    }
}

async fn posts_edits_and_deletes_change_what_pages_show(store: Arc<dyn Store>) {
    let conversations = seed_history(&store).await;
    let c = ConversationId(conversations[1]);
    let before = page(&store, &query(&[("limit", "5")], c.0)).await;
    let posted = store
        .post_message(&ws(WS), c, &message("a new one"))
        .await
        .expect("post");
    assert_eq!(posted.message.body.as_deref(), Some("a new one"));
    assert_eq!(posted.message.sender_type, "agent");
    assert!(posted.message.id > before.messages[0].id);
    let (old, new) = &posted.contact;
    assert_eq!(old.id, new.id);
    assert_eq!(new.last_activity_at, posted.message.created_at);
    let after = page(&store, &query(&[("limit", "5")], c.0)).await;
    assert_eq!(after.messages[0], posted.message);
    assert_eq!(after.messages[1..], before.messages[..4]);

    let own = MessageId(posted.message.id);
    let mine = store
        .edit_message(&ws(WS), c, own, "mine, edited", &by("user_3", false))
        .await
        .expect("one's own message");
    assert_eq!(mine.body.as_deref(), Some("mine, edited"));
    assert_eq!(mine.edited_by.as_deref(), Some("user_3"));
    let theirs = store
        .edit_message(&ws(WS), c, own, "not mine", &by("user_4", false))
        .await;
    assert!(matches!(theirs, Err(Error::Forbidden(_))), "{theirs:?}");
    let refused = store
        .delete_message(&ws(WS), c, own, &by("user_4", false))
        .await;
    assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");

    let target = MessageId(before.messages[2].id);
    let edited = store
        .edit_message(&ws(WS), c, target, "fixed typo", &by("user_4", true))
        .await
        .expect("edit");
    assert_eq!(edited.body.as_deref(), Some("fixed typo"));
    assert_eq!(
        edited.edited_by.as_deref(),
        Some("user_4"),
        "the admin who edited"
    );
    assert!(edited.edited_at.is_some());
    let shown = page(&store, &query(&[("limit", "5")], c.0)).await;
    assert_eq!(shown.messages[3], edited);

    store
        .delete_message(&ws(WS), c, target, &by("user_4", true))
        .await
        .expect("delete");
    let shown = page(&store, &query(&[("limit", "5")], c.0)).await;
    let tombstone = &shown.messages[3];
    assert_eq!(tombstone.id, target.0, "a deleted message keeps its place");
    assert_eq!(tombstone.body, None);
    assert_eq!(tombstone.deleted_by.as_deref(), Some("user_4"));
    assert!(tombstone.deleted_at.is_some());
    let gone = store
        .edit_message(&ws(WS), c, target, "back", &by("user_4", true))
        .await;
    assert!(matches!(gone, Err(Error::NotFound("message"))), "{gone:?}");
    let again = store
        .delete_message(&ws(WS), c, target, &by("user_4", true))
        .await;
    assert!(
        matches!(again, Err(Error::NotFound("message"))),
        "{again:?}"
    );

    let contact = ContactId(new.id);
    let started = store
        .start_conversation(&ws(WS), contact)
        .await
        .expect("start");
    assert_eq!(
        (started.contact_id, started.status.as_str()),
        (new.id, "open")
    );
    let empty = page(&store, &query(&[], started.id)).await;
    assert!(empty.messages.is_empty() && !empty.pagination.has_more);
}

async fn no_conversation_or_message_crosses_workspaces(store: Arc<dyn Store>) {
    let conversations = seed_history(&store).await;
    let mine = ConversationId(conversations[0]);
    let other = ws(OTHER_WS);
    let q = MessageQuery::from_pairs([], &other, mine, &cursor_key()).expect("query");
    let read = store.messages(Read::Primary, &other, &q).await;
    assert!(
        matches!(read, Err(Error::NotFound("conversation"))),
        "{read:?}"
    );
    let posted = store.post_message(&other, mine, &message("x")).await;
    assert!(
        matches!(posted, Err(Error::NotFound("conversation"))),
        "{posted:?}"
    );
    let newest = page(&store, &query(&[("limit", "1")], mine.0))
        .await
        .messages[0]
        .id;
    let edit = store
        .edit_message(&other, mine, MessageId(newest), "x", &by("user_3", true))
        .await;
    assert!(matches!(edit, Err(Error::NotFound("message"))), "{edit:?}");
    let delete = store
        .delete_message(&other, mine, MessageId(newest), &by("user_3", true))
        .await;
    assert!(
        matches!(delete, Err(Error::NotFound("message"))),
        "{delete:?}"
    );
    let theirs = store
        .conversations(
            Read::Primary,
            &other,
            &ConversationQuery::from_pairs([], &other, &cursor_key()).expect("q"),
        )
        .await
        .expect("their conversations");
    assert_eq!(theirs.conversations.len(), 2);
    assert!(theirs
        .conversations
        .iter()
        .all(|c| c.workspace_id == OTHER_WS));
    let their_contact = ContactId(theirs.conversations[0].contact_id);
    let start = store.start_conversation(&ws(WS), their_contact).await;
    assert!(
        matches!(start, Err(Error::NotFound("contact"))),
        "{start:?}"
    );
    let wrong_thread = ConversationId(theirs.conversations[0].id);
    let moved = store
        .edit_message(
            &ws(WS),
            wrong_thread,
            MessageId(newest),
            "x",
            &by("user_3", true),
        )
        .await;
    assert!(
        matches!(moved, Err(Error::NotFound("message"))),
        "{moved:?}"
    );
    assert_eq!(
        page(&store, &query(&[("limit", "1")], mine.0))
            .await
            .messages[0]
            .id,
        newest
    );
}

/// A fixed set of messages among the seeded history, searched as agents do.
async fn message_search_finds_words_prefixes_and_phrases_newest_first(store: Arc<dyn Store>) {
    let conversations = seed_history(&store).await;
    let (a, b) = (
        ConversationId(conversations[0]),
        ConversationId(conversations[1]),
    );
    let mut said = Vec::new();
    for (conversation, body) in [
        (a, "Your refund for order 4471 is on its way"),
        (a, "Refunds take 5 days; the Café Zéphyr team"),
        (b, "Order number 4471 shipped to Zürich"),
        (b, "<script>alert('x')</script> refundable?"),
        (a, "zephyrine is a word only this message has"),
        (b, "Søren på Ærø: Straße, Ελλάδα, ёлка"),
    ] {
        let posted = store
            .post_message(&ws(WS), conversation, &message(body))
            .await
            .expect("post");
        said.push(posted.message.id);
    }
    store
        .delete_message(&ws(WS), a, MessageId(said[4]), &by("user_3", true))
        .await
        .expect("delete");
    let search = |pairs: Vec<(&'static str, String)>, workspace: &'static str| {
        let store = store.clone();
        async move {
            let q = MessageSearch::from_pairs(
                pairs.iter().map(|(k, v)| (*k, v.as_str())),
                &ws(workspace),
                &cursor_key(),
            )
            .expect("a valid search");
            store
                .search_messages(Read::Primary, &ws(workspace), &q)
                .await
                .expect("search")
        }
    };
    let ids = |page: &shared::message_search::MessageSearchPage| {
        page.hits.iter().map(|h| h.message.id).collect::<Vec<_>>()
    };
    let cases: Vec<(&str, Vec<i64>)> = vec![
        ("refund", vec![said[3], said[1], said[0]]),
        ("REF", vec![said[3], said[1], said[0]]),
        ("\"order number\"", vec![said[2]]),
        ("order 4471", vec![said[2], said[0]]),
        ("zurich", vec![said[2]]),
        ("cafe zéphyr", vec![said[1]]),
        ("zephyrine", vec![]),
        // Letters of their own, Greek and Cyrillic accents: as typed or without them.
        ("søren ærø", vec![said[5]]),
        ("soren aero strasse", vec![said[5]]),
        ("straße", vec![said[5]]),
        ("ελλάδα ёлка", vec![said[5]]),
        ("ελλαδα елка", vec![said[5]]),
        ("qqqzzz", vec![]),
    ];
    for (q, expected) in cases {
        let page = search(vec![("q", q.to_owned())], WS).await;
        assert_eq!(ids(&page), expected, "{q}");
    }
    let in_b = search(
        vec![("q", "refund".into()), ("conversation_id", b.0.to_string())],
        WS,
    )
    .await;
    assert_eq!(ids(&in_b), [said[3]]);
    let hit = &in_b.hits[0];
    assert_eq!(hit.conversation_id, b.0);
    assert!(hit.snippet.starts_with("&lt;script&gt;"), "{}", hit.snippet);
    assert!(
        hit.snippet.contains("<mark>refundable</mark>"),
        "{}",
        hit.snippet
    );
    let by_contact = search(
        vec![
            ("q", "refund".into()),
            ("contact_id", hit.contact.id.to_string()),
        ],
        WS,
    )
    .await;
    assert!(ids(&by_contact).contains(&said[3]));
    assert!(by_contact
        .hits
        .iter()
        .all(|h| h.contact.id == hit.contact.id));

    // Pages of one hit walk the same order; relevance finds the same hits.
    let mut walked = Vec::new();
    let mut pairs = vec![("q", "refund".to_owned()), ("limit", "1".to_owned())];
    loop {
        let page = search(pairs.clone(), WS).await;
        walked.extend(ids(&page));
        let Some(next) = page.pagination.next_cursor else {
            break;
        };
        pairs = vec![
            ("q", "refund".to_owned()),
            ("limit", "1".to_owned()),
            ("cursor", next),
        ];
    }
    assert_eq!(walked, [said[3], said[1], said[0]]);
    let mut ranked = ids(&search(
        vec![("q", "refund".into()), ("sort", "relevance".into())],
        WS,
    )
    .await);
    ranked.sort_unstable();
    assert_eq!(ranked, [said[0], said[1], said[3]]);

    // Another workspace finds none of these.
    let theirs = search(vec![("q", "refund".into())], OTHER_WS).await;
    assert!(theirs.hits.is_empty(), "{:?}", ids(&theirs));
}
