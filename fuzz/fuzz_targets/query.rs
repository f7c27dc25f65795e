//! Any query string: parsing never panics, an accepted query stays within the bounds of
//! the contract, and writing it back out and parsing again gives the same query (so two
//! spellings of one query share one cache key).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::cursor::CursorKey;
use shared::query::{ContactListQuery, MAX_PAGE, MAX_PER_PAGE, MAX_SEARCH_CHARS};
use shared::{BoardId, UserId, WorkspaceId};

fuzz_target!(|raw: &str| {
    let pairs = raw
        .split('&')
        .map(|p| p.split_once('=').unwrap_or((p, "")));
    let user = UserId::parse("user_1").expect("a valid user");
    let ws = WorkspaceId::parse("15213").expect("a valid workspace");
    let board = BoardId(1);
    let key = CursorKey::from_token_secret(b"the server's token secret, 32 bytes");
    let Ok(q) = ContactListQuery::from_pairs(pairs, &ws, board, &user, &key) else {
        return;
    };
    // A cursor carries the page it leads to, which may lie past the offset pages' bound.
    assert!(q.after.is_some() || (1..=MAX_PAGE).contains(&q.page));
    assert!((1..=MAX_PER_PAGE).contains(&q.per_page));
    if let Some(s) = &q.search {
        assert!(!s.is_empty() && s.chars().count() <= MAX_SEARCH_CHARS);
        assert!(!s.chars().any(char::is_control));
    }
    let page = q.page.to_string();
    let per_page = q.per_page.to_string();
    let column = q.column_id.map(|c| c.to_string());
    let mut again = vec![
        ("page", page.as_str()),
        ("per_page", per_page.as_str()),
        ("filter", q.filter.as_str()),
        ("sort_by", q.sort_by.as_str()),
        ("sort_order", q.sort_order.as_str()),
    ];
    if let Some(c) = &column {
        again.push(("column_id", c));
    }
    if let Some(s) = &q.search {
        again.push(("search", s));
    }
    let cursor = q.after.as_ref().map(|c| c.encode(&key, &q.binding(&ws, board)));
    if let Some(c) = &cursor {
        again.push(("cursor", c));
    }
    let reparsed = ContactListQuery::from_pairs(again, &ws, board, &user, &key)
        .expect("a parsed query parses again");
    assert_eq!(reparsed, q);
    assert_eq!(reparsed.canonical(), q.canonical());
});
