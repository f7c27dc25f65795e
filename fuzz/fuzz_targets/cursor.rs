//! Any cursor text, and any position digested for the very list it is used with (the
//! digest is no secret, so anyone can make one): decoding never panics, and a list or a
//! conversation list sorted by time takes a cursor only with a real timestamp in it, so
//! nothing else reaches SQL.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shared::cursor::{is_timestamp, Cursor};
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
    let _ = Cursor::decode(input.raw, "any list");
    let _ = ContactListQuery::from_pairs([("cursor", input.raw)], &ws, board, &user);

    let sort = if input.by_name { "name" } else { "created_at" };
    let list = ContactListQuery::from_pairs([("sort_by", sort)], &ws, board, &user)
        .expect("a valid list");
    let forged = Cursor {
        page: input.page,
        value: input.value.clone(),
        id: input.id,
    };
    let raw = forged.encode(&list.binding(&ws, board));
    let pairs = [("sort_by", sort), ("cursor", raw.as_str())];
    if let Ok(q) = ContactListQuery::from_pairs(pairs, &ws, board, &user) {
        let after = q.after.expect("a cursor page");
        assert_eq!((after.id, after.page), (input.id, input.page));
        assert!(input.by_name || is_timestamp(&after.value), "{:?}", after.value);
    }

    let base = ConversationQuery::from_pairs(std::iter::empty(), &ws).expect("a valid list");
    let conversations = base.next_cursor(&ws, input.value.clone(), input.id);
    if let Ok(q) = ConversationQuery::from_pairs([("cursor", conversations.as_str())], &ws) {
        let after = q.after.expect("a cursor page");
        assert!(is_timestamp(&after.value), "{:?}", after.value);
    }
});
