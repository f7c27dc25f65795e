//! Any cursor text, and any position signed for the very list it is used with: decoding
//! never panics; a position signed with another key is always refused; and even one
//! signed with the server's key (as a store's bug might make) is taken by a list or a
//! conversation list sorted by time only with a real timestamp in it, so nothing else
//! reaches SQL.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shared::cursor::{is_timestamp, Cursor, CursorKey};
use shared::messages::ConversationQuery;
use shared::query::ContactListQuery;
use shared::{BoardId, UserId, WorkspaceId};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    raw: &'a str,
    value: String,
    id: i64,
    page: u32,
    by_name: bool,
}

fuzz_target!(|input: Input| {
    let ws = WorkspaceId::parse("15213").expect("a valid workspace");
    let user = UserId::parse("user_1").expect("a valid user");
    let board = BoardId(1);
    let key = CursorKey::from_token_secret(b"the server's token secret, 32 bytes");
    let _ = Cursor::decode(input.raw, &key, "any list");
    let _ = ContactListQuery::from_pairs([("cursor", input.raw)], &ws, board, &user, &key);

    let sort = if input.by_name { "name" } else { "created_at" };
    let list = ContactListQuery::from_pairs([("sort_by", sort)], &ws, board, &user, &key)
        .expect("a valid list");
    let forged = Cursor {
        page: input.page,
        value: input.value.clone(),
        id: input.id,
    };
    let binding = list.binding(&ws, board);
    let forger = CursorKey::from_token_secret(input.raw.as_bytes());
    let forged_raw = forged.encode(&forger, &binding);
    assert!(
        input.raw.as_bytes() == b"the server's token secret, 32 bytes"
            || Cursor::decode(&forged_raw, &key, &binding).is_err()
    );
    let raw = forged.encode(&key, &binding);
    let pairs = [("sort_by", sort), ("cursor", raw.as_str())];
    if let Ok(q) = ContactListQuery::from_pairs(pairs, &ws, board, &user, &key) {
        let after = q.after.expect("a cursor page");
        assert_eq!((after.id, after.page), (input.id, input.page));
        assert!(input.by_name || is_timestamp(&after.value), "{:?}", after.value);
    }

    let base =
        ConversationQuery::from_pairs(std::iter::empty(), &ws, &key).expect("a valid list");
    let conversations = base.next_cursor(&key, &ws, input.value.clone(), input.id);
    if let Ok(q) = ConversationQuery::from_pairs([("cursor", conversations.as_str())], &ws, &key) {
        let after = q.after.expect("a cursor page");
        assert!(is_timestamp(&after.value), "{:?}", after.value);
    }
});
