//! What the search indexes cost writers: message posts and contact renames through the
//! store from 8 tasks, on two databases seeded alike, one as migrated and one with the
//! search columns, indexes and vocabulary triggers dropped, in the same run and taking
//! turns (with, without, with, without) so that neither has the quieter half of the run.

use std::sync::Arc;
use std::time::Duration;

use origin::store::fields::ContactFields;
use origin::store::messages::NewMessage;
use origin::store::postgres::PgStore;
use origin::store::Store;
use serde_json::{json, Value};
use shared::messages::SenderType;
use shared::{ContactId, ConversationId, WorkspaceId};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::database::ids;
use crate::plan::Plan;
use crate::writes;
use e2e::origins;

const WRITERS: u64 = 8;
const WORKSPACE: &str = "swrites";

/// What the database without search drops: everything the search migrations added to
/// the write path of contacts and messages (the creation-time sort index is put back
/// without the words it carries).
const WITHOUT_SEARCH: [&str; 8] = [
    "DROP TRIGGER contact_search_words_insert ON contacts",
    "DROP TRIGGER contact_search_words_update ON contacts",
    "DROP INDEX contacts_search_lean_keys_idx",
    "ALTER TABLE contacts DROP COLUMN search_doc",
    "CREATE INDEX contacts_board_created_idx ON contacts (board_id, created_at, id) \
     INCLUDE (workspace_id, archived)",
    "DROP INDEX messages_search_idx",
    "ALTER TABLE messages DROP COLUMN search_doc",
    "ANALYZE contacts",
];

/// Words of the bodies posted and names given: new words each time, as people write.
const WORDS: [&str; 12] = [
    "invoice",
    "refund",
    "shipping",
    "thursday",
    "password",
    "export",
    "screenshot",
    "delivery",
    "upgrade",
    "billing",
    "account",
    "meeting",
];

#[derive(Clone, Copy)]
enum Write {
    Post,
    Rename,
}

struct Target {
    store: Arc<PgStore>,
    conversations: Arc<Vec<ConversationId>>,
    contacts: Arc<Vec<ContactId>>,
}

/// Contacts and messages of the write workspace.
fn sizes(plan: &Plan) -> (u32, u64) {
    if plan.quick {
        (20_000, 50_000)
    } else {
        (200_000, 1_000_000)
    }
}

/// The database `suffix`, freshly seeded with the plan's write workspace, without its
/// search objects when `plain`. Fresh each run, both: a database written to before has
/// room in its pages that a fresh one lacks (the side without search read 1,183 and
/// then 1,465 posts a second in two runs that differed, on that side, only in what had
/// been written to it before).
async fn prepared(plan: &Plan, suffix: &str, plain: bool) -> Target {
    let (contacts, messages) = sizes(plan);
    let name = format!("{}_writes_{suffix}", plan.database());
    let url = origins::database_url(&name);
    origins::on_server(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    origins::on_server(&format!("CREATE DATABASE {name}")).await;
    origins::seed(&url, WORKSPACE, contacts, 1, (100, messages));
    if plain {
        let db = PgPool::connect(&url).await.expect("writes database");
        for sql in WITHOUT_SEARCH {
            sqlx::query(sql).execute(&db).await.expect(sql);
        }
        db.close().await;
    }
    let db = PgPoolOptions::new()
        .max_connections(WRITERS as u32)
        .connect(&url)
        .await
        .expect("writes database");
    let conversations = ids(
        &db,
        "SELECT id FROM conversations WHERE workspace_id = $1",
        WORKSPACE,
    )
    .await;
    let contacts = ids(
        &db,
        "SELECT id FROM contacts WHERE workspace_id = $1 ORDER BY random() LIMIT 20000",
        WORKSPACE,
    )
    .await;
    Target {
        store: Arc::new(PgStore::new(db, None, origins::cursor_key())),
        conversations: Arc::new(conversations.into_iter().map(ConversationId).collect()),
        contacts: Arc::new(contacts.into_iter().map(ContactId).collect()),
    }
}

/// Writes a second of `write` on `target` from `WRITERS` tasks for `run_for`.
async fn per_sec(target: &Target, write: Write, run_for: Duration) -> f64 {
    let ws = WorkspaceId::parse(WORKSPACE).expect("workspace");
    let (store, conversations, contacts) = (
        target.store.clone(),
        target.conversations.clone(),
        target.contacts.clone(),
    );
    writes::per_sec(WRITERS, run_for, move |r, done| {
        let (store, ws) = (store.clone(), ws.clone());
        let (a, b) = (WORDS[r % WORDS.len()], WORDS[r / WORDS.len() % WORDS.len()]);
        let pick = r / (WORDS.len() * WORDS.len());
        let (conversation, contact) = (
            conversations[pick % conversations.len()],
            contacts[pick % contacts.len()],
        );
        async move {
            match write {
                Write::Post => {
                    let message = NewMessage {
                        sender_type: SenderType::Agent,
                        sender_id: Some("user_1".into()),
                        body: format!("About the {a}: the {b} is done #{done}"),
                    };
                    store
                        .post_message(&ws, conversation, &message)
                        .await
                        .expect("post");
                }
                Write::Rename => {
                    let fields = ContactFields {
                        name: Some(format!("{a} {b}{done}")),
                        ..ContactFields::default()
                    };
                    store
                        .update_contact(&ws, contact, fields)
                        .await
                        .expect("rename");
                }
            }
        }
    })
    .await
}

pub async fn measure(plan: &Plan) -> Value {
    let with = prepared(plan, "search", false).await;
    let without = prepared(plan, "plain", true).await;
    let half = plan.writes_for / 2;
    let (contacts, messages) = sizes(plan);
    let mut out = json!({
        "workspace": WORKSPACE,
        "contacts": contacts,
        "messages": messages,
        "writers": WRITERS,
        "secondsEach": plan.writes_for.as_secs_f64(),
    });
    for (name, write) in [("posts", Write::Post), ("contactRenames", Write::Rename)] {
        let (mut a, mut b) = (0.0, 0.0);
        for _ in 0..2 {
            a += per_sec(&with, write, half).await / 2.0;
            b += per_sec(&without, write, half).await / 2.0;
        }
        out[name] = json!({
            "withSearchPerSec": a,
            "withoutSearchPerSec": b,
            "ratio": a / b.max(1.0),
        });
    }
    for t in [with, without] {
        t.store.close().await;
    }
    out
}
