//! The store contract: every case runs against Postgres (a fresh database) and the
//! embedded SQLite store (a fresh file), and must pass for both.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use origin::error::Error;
use origin::store::contacts::SEARCH_TOTAL_CAP;
use origin::store::fields::ContactFields;
use origin::store::sqlite::SqliteStore;
use origin::store::{Read, Store};
use serde_json::json;
use shared::model::Counts;
use shared::query::{ContactListQuery, Filter, SortBy, SortOrder};
use shared::settings::CacheSettings;
use shared::{BoardId, ContactId, UserId};
use sqlx::PgPool;

use crate::helpers::*;

/// A SQLite file of its own, removed (with its WAL files) when the test ends.
pub(crate) struct TempSqlite {
    pub store: Arc<SqliteStore>,
    path: PathBuf,
}

impl TempSqlite {
    pub async fn new() -> Self {
        let path = std::env::temp_dir().join(format!("edgecache-{}.sqlite3", unique_namespace()));
        let store = Arc::new(
            SqliteStore::open(&path, cursor_key())
                .await
                .expect("open sqlite"),
        );
        store.migrate().await.expect("migrate sqlite");
        Self { store, path }
    }
}

impl Drop for TempSqlite {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Runs each named `async fn(Arc<dyn Store>)` of the calling module on both stores.
macro_rules! contract {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            use super::*;

            #[sqlx::test(migrations = "../migrations")]
            async fn postgres(db: PgPool) {
                super::$case(pg(&db)).await;
            }

            #[tokio::test]
            async fn sqlite() {
                let file = TempSqlite::new().await;
                super::$case(file.store.clone()).await;
            }
        }
    )+};
}
pub(crate) use contract;

contract!(
    seeding_fills_an_empty_store,
    every_count_equals_the_total_of_its_filtered_list,
    pages_follow_the_requested_order_without_gaps_or_repeats,
    search_matches_name_email_and_company_literally,
    search_finds_words_prefixes_typos_phones_and_accents_best_first,
    nothing_reads_or_writes_across_workspaces,
    writes_create_patch_move_and_delete,
    settings_default_then_persist,
    cursor_pages_walk_every_sort_and_filter_as_offset_pages_do,
    counters_equal_a_recount_after_concurrent_writes_and_folds,
    a_broad_search_counts_its_matches_up_to_the_cap,
    clock_counts_match_the_contacts_timestamps,
);

fn user() -> UserId {
    UserId::parse("user_3").expect("user")
}

fn count_of(c: &Counts, f: Filter) -> i64 {
    match f {
        Filter::All => c.total,
        Filter::Open => c.open,
        Filter::Closed => c.closed,
        Filter::Unassigned => c.unassigned,
        Filter::AssignedToMe => c.assigned_to_me,
        Filter::HighPriority => c.high_priority,
        Filter::MediumPriority => c.medium_priority,
        Filter::LowPriority => c.low_priority,
        Filter::NeedsResponse => c.needs_response,
        Filter::FollowUp => c.follow_up,
        Filter::Favorites => c.favorites,
        Filter::Archived => c.archived,
        Filter::UnhappyCustomers => c.unhappy_customers,
        Filter::NewCustomers => c.new_customers,
        Filter::RecentActivity => c.recent_activity,
    }
}

async fn seed_two(store: &Arc<dyn Store>) -> Vec<BoardId> {
    let seeded = store.seed(&ws(WS), 400, 2).await.expect("seed");
    store.seed(&ws(OTHER_WS), 100, 1).await.expect("seed other");
    seeded.boards.into_iter().map(BoardId).collect()
}

fn fields(value: serde_json::Value) -> ContactFields {
    serde_json::from_value(value).expect("fields")
}

async fn seeding_fills_an_empty_store(store: Arc<dyn Store>) {
    assert!(store.is_empty().await.expect("is_empty"));
    let seeded = store.seed(&ws(WS), 250, 3).await.expect("seed");
    assert!(!store.is_empty().await.expect("is_empty"));
    assert_eq!(seeded.contacts, 250);
    assert_eq!(seeded.boards.len(), 3);
    let boards = store.boards(Read::Primary, &ws(WS)).await.expect("boards");
    assert_eq!(
        boards,
        seeded
            .boards
            .iter()
            .copied()
            .map(BoardId)
            .collect::<Vec<_>>()
    );
    let c = store
        .counts(Read::Primary, &ws(WS), &user())
        .await
        .expect("counts");
    assert_eq!(c.total + c.archived, 250);
    assert_eq!(c.open + c.closed, c.total);
    assert_eq!(
        c.high_priority + c.medium_priority + c.low_priority,
        c.total
    );
    assert!(c.archived > 0 && c.unassigned > 0 && c.recent_activity < c.total);
    let drift = store.check_counters(None, false).await.expect("check");
    assert!(
        drift.is_empty(),
        "seeding leaves the counters exact: {drift:?}"
    );
}

async fn every_count_equals_the_total_of_its_filtered_list(store: Arc<dyn Store>) {
    let boards = seed_two(&store).await;
    let counts = store
        .counts(Read::Primary, &ws(WS), &user())
        .await
        .expect("counts");
    for &filter in Filter::ALL {
        let mut listed = 0;
        for board in &boards {
            let q = ContactListQuery {
                filter,
                ..ContactListQuery::default()
            };
            let page = store
                .page(Read::Primary, &ws(WS), *board, &q, &user())
                .await
                .expect("page");
            listed += page.pagination.total;
        }
        assert_eq!(listed, count_of(&counts, filter), "{filter:?}");
    }
    assert!(counts.new_customers > 0 || counts.recent_activity > 0);
}

async fn pages_follow_the_requested_order_without_gaps_or_repeats(store: Arc<dyn Store>) {
    let boards = seed_two(&store).await;
    for &sort_by in SortBy::ALL {
        for &sort_order in SortOrder::ALL {
            let page = |page| {
                let q = ContactListQuery {
                    page,
                    per_page: 100,
                    sort_by,
                    sort_order,
                    ..ContactListQuery::default()
                };
                let (store, board) = (store.clone(), boards[0]);
                async move {
                    store
                        .page(Read::Primary, &ws(WS), board, &q, &user())
                        .await
                        .expect("page")
                }
            };
            let mut seen = Vec::new();
            let mut total = 0;
            for n in 1..=3 {
                let p = page(n).await;
                total = p.pagination.total;
                seen.extend(p.contacts);
            }
            assert_eq!(seen.len() as i64, total, "{sort_by:?} {sort_order:?}");
            let p = page(50).await;
            assert!(p.contacts.is_empty() && p.pagination.next_cursor.is_none());
            assert_eq!(p.pagination.total, total);
            let key = |c: &shared::model::Contact| match sort_by {
                SortBy::CreatedAt => c.created_at.clone(),
                SortBy::UpdatedAt => c.updated_at.clone(),
                SortBy::Name => c.name.clone(),
                SortBy::LastActivityAt | SortBy::Relevance => c.last_activity_at.clone(),
            };
            for pair in seen.windows(2) {
                let (a, b) = ((key(&pair[0]), pair[0].id), (key(&pair[1]), pair[1].id));
                // Without a search every contact is as relevant: the most recent first.
                let order = match sort_by {
                    SortBy::Relevance => SortOrder::Desc,
                    _ => sort_order,
                };
                match order {
                    SortOrder::Asc => assert!(a < b, "{sort_by:?} asc: {a:?} then {b:?}"),
                    SortOrder::Desc => assert!(a > b, "{sort_by:?} desc: {a:?} then {b:?}"),
                }
            }
            assert!(seen
                .iter()
                .all(|c| c.board_id == boards[0].0 && !c.archived));
        }
    }
}

async fn search_matches_name_email_and_company_literally(store: Arc<dyn Store>) {
    let board = seed_two(&store).await[0];
    let search = |term: &str| {
        let store = store.clone();
        let q = ContactListQuery {
            search: Some(term.to_owned()),
            per_page: 100,
            ..ContactListQuery::default()
        };
        async move {
            store
                .page(Read::Primary, &ws(WS), board, &q, &user())
                .await
                .expect("search")
        }
    };
    let hopper = search("hopper").await;
    assert!(hopper.pagination.total > 0);
    assert!(hopper.contacts.iter().all(|c| c.name.contains("Hopper")));
    let company = search("initech").await;
    assert!(company.pagination.total > 0);
    assert!(company
        .contacts
        .iter()
        .all(|c| c.company.as_deref() == Some("Initech")));
    let at = search("@acme.example").await;
    assert!(at.pagination.total > 0);
    // Punctuation alone is no word: it finds nothing (and is no SQL pattern).
    assert_eq!(search("%").await.pagination.total, 0);
    assert_eq!(search("_").await.pagination.total, 0);
}

/// A fixed corpus on a board of its own, searched as CRM users type.
async fn search_finds_words_prefixes_typos_phones_and_accents_best_first(store: Arc<dyn Store>) {
    let seeded = store.seed(&ws(WS), 1, 1).await.expect("seed");
    let theirs = store.seed(&ws(OTHER_WS), 50, 1).await.expect("seed other");
    let board = BoardId(seeded.boards[0]);
    // The seeded contact (archived or not) leaves the board to the corpus, and its column.
    let mut column = None;
    for filter in [Filter::All, Filter::Archived] {
        let q = ContactListQuery {
            filter,
            ..ContactListQuery::default()
        };
        let page = store
            .page(Read::Primary, &ws(WS), board, &q, &user())
            .await
            .expect("page");
        for c in page.contacts {
            column = Some(c.column_id);
            store
                .delete_contact(&ws(WS), ContactId(c.id))
                .await
                .expect("an empty board");
        }
    }
    let column = column.expect("the seeded contact");
    let corpus = [
        (
            "Grace Hopper",
            "grace.hopper@navy.example",
            "Navy Labs",
            "+1 (555) 010-0042",
        ),
        (
            "Gracie Hopperton",
            "gh@cobol.example",
            "Cobol Corp",
            "555.010.9999",
        ),
        (
            "José Álvarez",
            "jose@alvarez.example",
            "Ñandú SA",
            "+34 600 123 456",
        ),
        (
            "Washington Irving",
            "wi@sleepy.example",
            "Sleepy Hollow",
            "",
        ),
        (
            "Ada Lovelace",
            "ada@engine.example",
            "Analytical Engines",
            "5550100043",
        ),
        ("Ștefan Nguyễn", "sn@saigon.example", "İzmir Ltd", ""),
        ("Søren Strauß", "soren@aero.example", "Ærø Œuvre", ""),
        ("Αλέξης Ёлкин", "alexis@athens.example", "Łódź Đakovo", ""),
    ];
    let mut id = std::collections::HashMap::new();
    for (name, email, company, phone) in corpus {
        let created = store
            .create_contact(
                &ws(WS),
                fields(json!({
                    "board_id": board.0, "column_id": column, "name": name,
                    "email": email, "company": company,
                    "phone": (!phone.is_empty()).then_some(phone),
                })),
            )
            .await
            .expect("create");
        id.insert(name.split(' ').next().expect("first name"), created.id);
    }
    let found = |term: &str, sort_by: SortBy| {
        let store = store.clone();
        let q = ContactListQuery {
            search: Some(term.to_lowercase()),
            sort_by,
            per_page: 100,
            ..ContactListQuery::default()
        };
        async move {
            let page = store
                .page(Read::Primary, &ws(WS), board, &q, &user())
                .await
                .expect("search");
            assert_eq!(page.pagination.total, page.contacts.len() as i64, "{q:?}");
            page.contacts.iter().map(|c| c.id).collect::<Vec<_>>()
        }
    };
    let set = |ids: Vec<i64>| ids.into_iter().collect::<std::collections::BTreeSet<_>>();
    let of = |names: &[&str]| {
        names
            .iter()
            .map(|n| id[n])
            .collect::<std::collections::BTreeSet<_>>()
    };
    let cases: &[(&str, &[&str])] = &[
        // A phone's digits, however either side is punctuated.
        ("+1 (555) 010-0042", &["Grace"]),
        ("5550100042", &["Grace"]),
        ("555-010-0042", &["Grace"]),
        ("(555) 0100042", &["Grace"]),
        ("0042", &["Grace"]),
        ("555010", &["Grace", "Gracie", "Ada"]),
        ("10004", &["Grace", "Ada"]),
        // Words by prefix, in any field, in any order.
        ("gra", &["Grace", "Gracie"]),
        ("hop gra", &["Grace", "Gracie"]),
        ("hopperton", &["Gracie"]),
        ("lovelac", &["Ada"]),
        ("lovelas", &[]),
        ("washingto", &["Washington"]),
        ("navy", &["Grace"]),
        ("grace.hopper@navy", &["Grace"]),
        // Quotes are no part of a word; "grace" is a typo away from "gracie".
        ("\"grace hopper\"", &["Grace", "Gracie"]),
        ("sleepy", &["Washington"]),
        // Case and accents aside, on either side.
        ("JOSE alvarez", &["José"]),
        ("Álvarez", &["José"]),
        ("nandu", &["José"]),
        ("ñandú", &["José"]),
        ("stefan nguyen", &["Ștefan"]),
        ("Ștefan", &["Ștefan"]),
        ("izmir", &["Ștefan"]),
        ("İzmir", &["Ștefan"]),
        // Letters of their own spelled out (ß, ø, æ, œ, ł, đ), Greek and Cyrillic
        // accents: found typed as stored or without them, on both stores.
        ("Søren", &["Søren"]),
        ("soren strauss", &["Søren"]),
        ("strauß", &["Søren"]),
        ("ærø œuvre", &["Søren"]),
        ("aero oeuvre", &["Søren"]),
        ("Αλέξης", &["Αλέξης"]),
        ("αλεξης", &["Αλέξης"]),
        ("Ёлкин", &["Αλέξης"]),
        ("елкин", &["Αλέξης"]),
        ("Łódź Đakovo", &["Αλέξης"]),
        ("lodz dakovo", &["Αλέξης"]),
        // One typo from 5 letters, two from 9; none below.
        ("hoper", &["Grace"]),
        ("lovelcae", &[]),
        ("lovelave", &["Ada"]),
        ("wasingtonn", &["Washington"]),
        ("hxpxer", &[]),
        ("grce", &[]),
        ("zzzqqq", &[]),
    ];
    for (term, expected) in cases {
        assert_eq!(
            set(found(term, SortBy::CreatedAt).await),
            of(expected),
            "{term}"
        );
    }
    // Best first: a whole word, then a word's start, then a typo; ties by recency.
    assert_eq!(
        found("hopper", SortBy::Relevance).await,
        [id["Grace"], id["Gracie"]]
    );
    assert_eq!(
        found("gracie", SortBy::Relevance).await,
        [id["Gracie"], id["Grace"]]
    );
    assert_eq!(
        found("gra", SortBy::Relevance).await,
        [id["Gracie"], id["Grace"]]
    );

    // Cursor pages of a relevance sort walk the same order, one contact a page.
    let mut q = ContactListQuery {
        search: Some("gra hop".into()),
        sort_by: SortBy::Relevance,
        per_page: 1,
        ..ContactListQuery::default()
    };
    let mut walked = Vec::new();
    loop {
        let page = store
            .page(Read::Primary, &ws(WS), board, &q, &user())
            .await
            .expect("cursor page");
        walked.extend(page.contacts.iter().map(|c| c.id));
        let Some(next) = page.pagination.next_cursor else {
            break;
        };
        let after = q
            .decode_cursor(&next, &cursor_key(), &ws(WS), board)
            .expect("a cursor the store signed");
        q.page = after.page;
        q.after = Some(after);
    }
    assert_eq!(walked, found("gra hop", SortBy::Relevance).await);

    // Another workspace searching for the same words finds only its own contacts.
    for term in ["grace", "hopper", "0042"] {
        let q = ContactListQuery {
            search: Some(term.into()),
            ..ContactListQuery::default()
        };
        let page = store
            .page(
                Read::Primary,
                &ws(OTHER_WS),
                BoardId(theirs.boards[0]),
                &q,
                &user(),
            )
            .await
            .expect("their search");
        assert!(
            page.contacts.iter().all(|c| c.workspace_id == OTHER_WS),
            "{term}"
        );
        assert!(page
            .contacts
            .iter()
            .all(|c| !id.values().any(|mine| *mine == c.id)));
    }
}

async fn nothing_reads_or_writes_across_workspaces(store: Arc<dyn Store>) {
    let boards = seed_two(&store).await;
    let other_boards = store
        .boards(Read::Primary, &ws(OTHER_WS))
        .await
        .expect("boards");
    assert!(boards.iter().all(|b| !other_boards.contains(b)));
    let q = ContactListQuery::default();
    let err = store
        .page(Read::Primary, &ws(WS), other_boards[0], &q, &user())
        .await
        .expect_err("another workspace's board");
    assert!(matches!(err, Error::NotFound("board")), "{err:?}");

    let theirs = store
        .page(Read::Primary, &ws(OTHER_WS), other_boards[0], &q, &user())
        .await
        .expect("own board")
        .contacts[0]
        .id;
    let err = store
        .update_contact(
            &ws(WS),
            ContactId(theirs),
            fields(json!({"name": "Mallory"})),
        )
        .await
        .expect_err("update across workspaces");
    assert!(matches!(err, Error::NotFound("contact")), "{err:?}");
    let err = store
        .delete_contact(&ws(WS), ContactId(theirs))
        .await
        .expect_err("delete across workspaces");
    assert!(matches!(err, Error::NotFound("contact")), "{err:?}");
    let err = store
        .create_contact(
            &ws(WS),
            fields(json!({"board_id": other_boards[0].0, "column_id": 1, "name": "Eve"})),
        )
        .await
        .expect_err("create on another workspace's board");
    assert!(
        matches!(err, Error::Input(ref e) if e.code == "invalid_reference"),
        "{err:?}"
    );
    let after = store
        .counts(Read::Primary, &ws(OTHER_WS), &user())
        .await
        .expect("counts");
    assert_eq!(after.total + after.archived, 100);
}

async fn writes_create_patch_move_and_delete(store: Arc<dyn Store>) {
    let boards = seed_two(&store).await;
    let first = store
        .page(
            Read::Primary,
            &ws(WS),
            boards[0],
            &ContactListQuery::default(),
            &user(),
        )
        .await
        .expect("page");
    let column = first.contacts[0].column_id;
    let before = store
        .counts(Read::Primary, &ws(WS), &user())
        .await
        .expect("counts");

    let created = store
        .create_contact(
            &ws(WS),
            fields(json!({
                "board_id": boards[0].0, "column_id": column, "name": "  Zed Zimmer ",
                "email": "zed@example.com", "priority": "high",
                "custom_attributes": {"plan": "team", "seats": 3}
            })),
        )
        .await
        .expect("create");
    assert_eq!(created.name, "Zed Zimmer");
    assert_eq!(created.status, "open");
    assert_eq!(created.priority, "high");
    assert_eq!(created.sentiment, "neutral");
    assert!(!created.archived && !created.favorite);
    assert_eq!(
        created.custom_attributes,
        json!({"plan": "team", "seats": 3})
    );
    let after = store
        .counts(Read::Primary, &ws(WS), &user())
        .await
        .expect("counts");
    assert_eq!(after.total, before.total + 1);
    assert_eq!(after.high_priority, before.high_priority + 1);
    assert_eq!(after.new_customers, before.new_customers + 1);

    let id = ContactId(created.id);
    let (old, patched) = store
        .update_contact(
            &ws(WS),
            id,
            fields(json!({"email": null, "favorite": true})),
        )
        .await
        .expect("patch");
    assert_eq!(old, created, "the contact as it was");
    assert_eq!(patched.email, None);
    assert!(patched.favorite);
    assert_eq!(patched.name, "Zed Zimmer");
    assert!(patched.updated_at >= created.updated_at);

    let err = store
        .update_contact(&ws(WS), id, fields(json!({"board_id": boards[1].0})))
        .await
        .expect_err("a move without a column");
    assert!(matches!(err, Error::Input(_)), "{err:?}");
    let target = store
        .page(
            Read::Primary,
            &ws(WS),
            boards[1],
            &ContactListQuery::default(),
            &user(),
        )
        .await
        .expect("page")
        .contacts[0]
        .column_id;
    let err = store
        .update_contact(&ws(WS), id, fields(json!({"column_id": target})))
        .await
        .expect_err("a column of another board");
    assert!(
        matches!(err, Error::Input(ref e) if e.code == "invalid_reference"),
        "{err:?}"
    );
    let (from, moved) = store
        .update_contact(
            &ws(WS),
            id,
            fields(json!({"board_id": boards[1].0, "column_id": target})),
        )
        .await
        .expect("move");
    assert_eq!(
        (from.board_id, moved.board_id, moved.column_id),
        (boards[0].0, boards[1].0, target)
    );

    assert_eq!(
        store.delete_contact(&ws(WS), id).await.expect("delete"),
        boards[1]
    );
    let err = store
        .delete_contact(&ws(WS), id)
        .await
        .expect_err("deleted twice");
    assert!(matches!(err, Error::NotFound("contact")), "{err:?}");
    let last = store
        .counts(Read::Primary, &ws(WS), &user())
        .await
        .expect("counts");
    assert_eq!(last, before);
}

async fn settings_default_then_persist(store: Arc<dyn Store>) {
    seed_two(&store).await;
    let loaded = store.load_settings(&ws(WS)).await.expect("load");
    assert_eq!(loaded, CacheSettings::default());
    let mut changed = CacheSettings::default();
    changed.cache_enabled = !changed.cache_enabled;
    changed.cache_config.contact_counts_ttl = 77;
    let first = store.save_settings(&ws(WS), &changed).await.expect("save");
    assert_eq!(store.load_settings(&ws(WS)).await.expect("load"), changed);
    changed.cache_config.contact_counts_ttl = 78;
    let second = store
        .save_settings(&ws(WS), &changed)
        .await
        .expect("save again");
    assert!(second >= first);
    assert_eq!(store.load_settings(&ws(WS)).await.expect("load"), changed);
    assert_eq!(
        store
            .load_settings(&ws(OTHER_WS))
            .await
            .expect("load other"),
        CacheSettings::default()
    );
    let err = store
        .save_settings(&ws("no_such_workspace"), &changed)
        .await
        .expect_err("unknown workspace");
    assert!(matches!(err, Error::NotFound("workspace")), "{err:?}");
}

fn sort_and_filter_cases() -> Vec<(SortBy, SortOrder, Filter)> {
    let mut cases = Vec::new();
    for &sort_by in SortBy::ALL {
        for &sort_order in SortOrder::ALL {
            for filter in [
                Filter::All,
                Filter::Open,
                Filter::AssignedToMe,
                Filter::Archived,
            ] {
                cases.push((sort_by, sort_order, filter));
            }
        }
    }
    cases
}

async fn cursor_pages_walk_every_sort_and_filter_as_offset_pages_do(store: Arc<dyn Store>) {
    let board = seed_two(&store).await[0];
    for (sort_by, sort_order, filter) in sort_and_filter_cases() {
        let base = ContactListQuery {
            sort_by,
            sort_order,
            filter,
            user: (filter == Filter::AssignedToMe).then(user),
            ..ContactListQuery::default()
        };
        let mut expected = Vec::new();
        let mut total = 0;
        for page in 1.. {
            let q = ContactListQuery {
                page,
                per_page: 100,
                ..base.clone()
            };
            let p = store
                .page(Read::Primary, &ws(WS), board, &q, &user())
                .await
                .expect("offset page");
            total = p.pagination.total;
            expected.extend(p.contacts.iter().map(|c| c.id));
            if !p.pagination.has_more {
                break;
            }
            assert!(expected.len() as i64 <= total, "offset pages repeat rows");
        }
        assert_eq!(expected.len() as i64, total);
        let mut q = ContactListQuery {
            per_page: 7,
            ..base.clone()
        };
        let mut walked = Vec::new();
        for page in 1.. {
            let p = store
                .page(Read::Primary, &ws(WS), board, &q, &user())
                .await
                .expect("cursor page");
            assert_eq!(p.pagination.page, page);
            assert_eq!(p.pagination.total, total);
            walked.extend(p.contacts.iter().map(|c| c.id));
            assert_eq!(p.pagination.has_more, p.pagination.next_cursor.is_some());
            let Some(next) = p.pagination.next_cursor else {
                break;
            };
            q.after = Some(
                shared::cursor::Cursor::decode(&next, &cursor_key(), &q.binding(&ws(WS), board))
                    .expect("a cursor the store made"),
            );
            q.page = page + 1;
        }
        assert_eq!(walked, expected, "{sort_by:?} {sort_order:?} {filter:?}");
    }
}

/// A small deterministic generator, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

async fn counters_equal_a_recount_after_concurrent_writes_and_folds(store: Arc<dyn Store>) {
    let boards = seed_two(&store).await;
    let mut columns = Vec::new();
    for board in &boards {
        let q = ContactListQuery {
            per_page: 100,
            ..ContactListQuery::default()
        };
        let page = store
            .page(Read::Primary, &ws(WS), *board, &q, &user())
            .await
            .expect("page");
        let mut cols: Vec<i64> = page.contacts.iter().map(|c| c.column_id).collect();
        cols.sort_unstable();
        cols.dedup();
        columns.push((board.0, cols));
    }
    let ids: Vec<i64> = store
        .page(
            Read::Primary,
            &ws(WS),
            boards[0],
            &ContactListQuery {
                per_page: 100,
                ..ContactListQuery::default()
            },
            &user(),
        )
        .await
        .expect("page")
        .contacts
        .iter()
        .map(|c| c.id)
        .collect();
    let columns = Arc::new(columns);
    let ids = Arc::new(ids);
    let writers = (0..6u64).map(|w| {
        let (store, columns, ids) = (store.clone(), columns.clone(), ids.clone());
        tokio::spawn(async move {
            let mut rng = Lcg(w + 1);
            for _ in 0..40 {
                let (board, cols) = &columns[rng.below(columns.len())];
                let column = cols[rng.below(cols.len())];
                let id = ContactId(ids[rng.below(ids.len())]);
                let change = match rng.below(7) {
                    0 => {
                        let f = fields(json!({"board_id": board, "column_id": column, "name": "New", "assigned_to": "user_3"}));
                        store.create_contact(&ws(WS), f).await.map(drop)
                    }
                    1 => store.delete_contact(&ws(WS), id).await.map(drop),
                    2 => {
                        let f = fields(json!({"board_id": board, "column_id": column}));
                        store.update_contact(&ws(WS), id, f).await.map(drop)
                    }
                    3 => {
                        let f = fields(json!({"archived": rng.below(2) == 0}));
                        store.update_contact(&ws(WS), id, f).await.map(drop)
                    }
                    4 => {
                        let who = [json!(null), json!("user_3"), json!("user_9")][rng.below(3)].clone();
                        store.update_contact(&ws(WS), id, fields(json!({"assigned_to": who}))).await.map(drop)
                    }
                    5 => {
                        let (status, priority) = (["open", "closed"][rng.below(2)], ["high", "low"][rng.below(2)]);
                        let f = fields(json!({"status": status, "priority": priority, "favorite": rng.below(2) == 0}));
                        store.update_contact(&ws(WS), id, f).await.map(drop)
                    }
                    _ => store.update_contact(&ws(WS), id, fields(json!({"name": "Renamed"}))).await.map(drop),
                };
                // A contact deleted by another writer is a 404, not a failure of the counters.
                if let Err(e) = change {
                    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
                }
            }
        })
    });
    // Shard folds run all along, as the origin's upkeep runs them beside writers.
    let writing = Arc::new(AtomicBool::new(true));
    let folds = {
        let (store, writing) = (store.clone(), writing.clone());
        tokio::spawn(async move {
            while writing.load(Ordering::Acquire) {
                store.fold_counters().await.expect("fold");
                tokio::task::yield_now().await;
            }
        })
    };
    for w in writers.collect::<Vec<_>>() {
        w.await.expect("writer");
    }
    writing.store(false, Ordering::Release);
    folds.await.expect("folds");
    let drift = store.check_counters(None, false).await.expect("check");
    assert!(drift.is_empty(), "{drift:?}");
    store.fold_counters().await.expect("last fold");
    let drift = store
        .check_counters(None, false)
        .await
        .expect("check after the last fold");
    assert!(drift.is_empty(), "{drift:?}");
    let counts = store
        .counts(Read::Primary, &ws(WS), &user())
        .await
        .expect("counts");
    let mut listed = 0;
    for board in &boards {
        let q = ContactListQuery {
            filter: Filter::AssignedToMe,
            user: Some(user()),
            ..ContactListQuery::default()
        };
        listed += store
            .page(Read::Primary, &ws(WS), *board, &q, &user())
            .await
            .expect("page")
            .pagination
            .total;
    }
    assert_eq!(listed, counts.assigned_to_me);
}

async fn a_broad_search_counts_its_matches_up_to_the_cap(store: Arc<dyn Store>) {
    let seeded = store.seed(&ws(WS), 2_500, 1).await.expect("seed");
    let board = BoardId(seeded.boards[0]);
    let search = |term: &str| ContactListQuery {
        search: Some(term.to_owned()),
        ..ContactListQuery::default()
    };
    let broad = store
        .page(Read::Primary, &ws(WS), board, &search("example"), &user())
        .await
        .expect("broad search");
    let p = &broad.pagination;
    assert_eq!(
        (p.total, p.total_exact, p.has_more),
        (SEARCH_TOTAL_CAP, false, true)
    );
    let narrow = store
        .page(Read::Primary, &ws(WS), board, &search("hopper"), &user())
        .await
        .expect("narrow search");
    let p = &narrow.pagination;
    assert!(
        p.total_exact && p.total > 0 && p.total < SEARCH_TOTAL_CAP,
        "{p:?}"
    );

    // Postgres finds a broad search's pages by walking the board and a narrow one's among
    // its matches (`Found`): both follow the list's own order, page after page.
    let every = |mut q: ContactListQuery| {
        let store = store.clone();
        async move {
            q.per_page = 100;
            let mut out = Vec::new();
            loop {
                let page = store
                    .page(Read::Primary, &ws(WS), board, &q, &user())
                    .await
                    .expect("page");
                out.extend(page.contacts.into_iter().map(|c| (c.id, c.name)));
                let Some(next) = page.pagination.next_cursor else {
                    return out;
                };
                let after = q
                    .decode_cursor(&next, &cursor_key(), &ws(WS), board)
                    .expect("a cursor the store signed");
                q.page = after.page;
                q.after = Some(after);
            }
        }
    };
    let all = every(ContactListQuery::default()).await;
    assert!(all.len() as i64 > SEARCH_TOTAL_CAP, "{}", all.len());
    assert_eq!(every(search("example")).await, all);
    // A letter alone has no key of its own: its matches are counted by the walk too.
    assert_eq!(every(search("e")).await, all);
    let hoppers: Vec<_> = all
        .iter()
        .filter(|(_, name)| name.to_lowercase().contains("hopper"))
        .cloned()
        .collect();
    assert_eq!(hoppers.len() as i64, p.total);
    assert_eq!(every(search("hopper")).await, hoppers);

    // Numbered pages among the matches, by name either way, are the list's own too.
    for sort_order in [SortOrder::Asc, SortOrder::Desc] {
        let by_name = |term: Option<&str>| ContactListQuery {
            search: term.map(str::to_owned),
            sort_by: SortBy::Name,
            sort_order,
            ..ContactListQuery::default()
        };
        let listed: Vec<_> = every(by_name(None))
            .await
            .into_iter()
            .filter(|(_, name)| name.to_lowercase().contains("hopper"))
            .collect();
        let mut paged = Vec::new();
        let mut q = ContactListQuery {
            per_page: 7,
            ..by_name(Some("hopper"))
        };
        loop {
            let page = store
                .page(Read::Primary, &ws(WS), board, &q, &user())
                .await
                .expect("numbered page");
            paged.extend(page.contacts.into_iter().map(|c| (c.id, c.name)));
            if !page.pagination.has_more {
                break;
            }
            q.page += 1;
        }
        assert!(q.page > 2, "{} pages", q.page);
        assert_eq!(paged, listed, "{sort_order:?}");
    }
}

/// The clock's counts against the timestamps the contacts carry, counted here: a count
/// taken between two instants lies between what each instant's window holds.
async fn clock_counts_match_the_contacts_timestamps(store: Arc<dyn Store>) {
    let boards = seed_two(&store).await;
    let before = chrono::Utc::now();
    let counts = store
        .counts(Read::Primary, &ws(WS), &user())
        .await
        .expect("counts");
    let after = chrono::Utc::now();
    let mut stamps = Vec::new();
    for board in &boards {
        let mut q = ContactListQuery {
            per_page: shared::query::MAX_PER_PAGE,
            ..ContactListQuery::default()
        };
        loop {
            let page = store
                .page(Read::Primary, &ws(WS), *board, &q, &user())
                .await
                .expect("page");
            for c in &page.contacts {
                let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).expect("timestamp");
                stamps.push((at(&c.created_at), at(&c.last_activity_at)));
            }
            if !page.pagination.has_more {
                break;
            }
            q.page += 1;
        }
    }
    let within = |at: chrono::DateTime<chrono::Utc>, created: bool| {
        let span = if created {
            chrono::Duration::days(7)
        } else {
            chrono::Duration::hours(24)
        };
        stamps
            .iter()
            .filter(|(c, a)| if created { *c } else { *a } > at - span)
            .count() as i64
    };
    for (created, counted) in [
        (true, counts.new_customers),
        (false, counts.recent_activity),
    ] {
        assert!(
            (within(after, created)..=within(before, created)).contains(&counted),
            "created: {created}, counted {counted}"
        );
    }
    assert!(counts.new_customers + counts.recent_activity > 0);
}

/// Postgres keeps the words typos are looked up in (`contact_search_words`) apart from the
/// contacts: its sweep drops what no contact holds any more, and keeps every word one does.
#[sqlx::test(migrations = "../migrations")]
async fn the_vocabulary_sweep_drops_only_the_words_no_contact_holds(db: PgPool) {
    let store = pg(&db);
    let seeded = store.seed(&ws(WS), 3, 1).await.expect("seed");
    store.seed(&ws(OTHER_WS), 20, 1).await.expect("seed other");
    let board = seeded.boards[0];
    let q = ContactListQuery::default();
    let page = store
        .page(Read::Primary, &ws(WS), BoardId(board), &q, &user())
        .await
        .expect("page");
    let column = page.contacts[0].column_id;
    let mine = ws(WS);
    let create = |name: &str| {
        store.create_contact(
            &mine,
            fields(json!({"board_id": board, "column_id": column, "name": name})),
        )
    };
    let renamed = create("Washington Irving").await.expect("create");
    // A word two contacts hold stays while one of them holds it.
    create("Quentin Irving").await.expect("create");
    let gone = create("Zebulon Pike").await.expect("create");
    store
        .update_contact(
            &ws(WS),
            ContactId(renamed.id),
            fields(json!({"name": "Washington Carver"})),
        )
        .await
        .expect("rename");
    store
        .delete_contact(&ws(WS), ContactId(gone.id))
        .await
        .expect("delete");
    let words = |of: &'static str| {
        sqlx::query_scalar::<_, String>(
            "SELECT word FROM contact_search_words WHERE workspace_id = $1 ORDER BY word",
        )
        .bind(of)
        .fetch_all(&db)
    };
    let before = words(WS).await.expect("words");
    for word in ["zebulon", "pike", "carver", "irving"] {
        assert!(before.iter().any(|w| w == word), "{word}: {before:?}");
    }
    let theirs = words(OTHER_WS).await.expect("their words");
    // Three words a step: the sweep goes on from where the last step stopped.
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM contact_search_words")
        .fetch_one(&db)
        .await
        .expect("vocabulary");
    let mut dropped = 0;
    for _ in 0..all / 3 + 1 {
        dropped += store.prune_search_words(3).await.expect("sweep");
    }
    let now = words(WS).await.expect("words");
    for word in ["zebulon", "pike"] {
        assert!(!now.iter().any(|w| w == word), "{word} stayed: {now:?}");
    }
    assert_eq!(dropped as usize, before.len() - now.len());
    // Every word a contact of the workspace holds is still there to find typos by.
    let held: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT w FROM contacts c, unnest(string_to_array(btrim(c.search_doc), ' ')) AS w \
         WHERE c.workspace_id = $1 AND length(w) BETWEEN 3 AND 64 AND w ~ '^[[:alpha:]]+$'",
    )
    .bind(WS)
    .fetch_all(&db)
    .await
    .expect("held words");
    let mut expected = held.clone();
    expected.sort();
    let mut kept = now.clone();
    kept.sort();
    assert_eq!(kept, expected);
    // While another instance sweeps (it holds the sweep's row), a sweep skips its turn.
    let xylophone = create("Zyzzyva Xylophone").await.expect("create");
    store
        .delete_contact(&ws(WS), ContactId(xylophone.id))
        .await
        .expect("delete");
    let mut other = db.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM contact_search_words_sweep FOR UPDATE")
        .execute(&mut *other)
        .await
        .expect("the sweep's row");
    assert_eq!(store.prune_search_words(1_000).await.expect("sweep"), 0);
    other.rollback().await.expect("rollback");
    let mut later = 0;
    for _ in 0..2 {
        later += store.prune_search_words(1_000).await.expect("sweep");
    }
    assert_eq!(later, 2, "zyzzyva and xylophone");
    let typo = ContactListQuery {
        search: Some("carvar".into()),
        ..ContactListQuery::default()
    };
    let found = store
        .page(Read::Primary, &ws(WS), BoardId(board), &typo, &user())
        .await
        .expect("search");
    assert_eq!(
        found.contacts.iter().map(|c| c.id).collect::<Vec<_>>(),
        [renamed.id]
    );
    // The other workspace's contacts hold every word of theirs.
    assert_eq!(words(OTHER_WS).await.expect("their words"), theirs);
}
