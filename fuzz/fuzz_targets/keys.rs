//! Any two sets of key inputs: keys are equal exactly when their inputs are, and every
//! key carries its workspace as its Redis Cluster hash tag (tenant isolation and slot
//! locality both rest on it).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shared::cursor::CursorKey;
use shared::keys::{Generations, KeySpace};
use shared::query::ContactListQuery;
use shared::{BoardId, UserId, WorkspaceId};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    namespace: &'a str,
    a: Side<'a>,
    b: Side<'a>,
}

#[derive(Arbitrary, Debug, PartialEq)]
struct Side<'a> {
    ws: &'a str,
    user: &'a str,
    board: i64,
    gens: (u64, u64),
    query: &'a str,
}

type Parsed = (WorkspaceId, UserId, BoardId, Generations, ContactListQuery);

fn parse(s: &Side<'_>) -> Option<Parsed> {
    let user = UserId::parse(s.user).ok()?;
    let ws = WorkspaceId::parse(s.ws).ok()?;
    let query = ContactListQuery::from_pairs(
        s.query.split('&').map(|p| p.split_once('=').unwrap_or((p, ""))),
        &ws,
        BoardId(s.board),
        &user,
        &CursorKey::from_token_secret(b"the server's token secret, 32 bytes"),
    )
    .ok()?;
    let gens = Generations {
        workspace: s.gens.0,
        scope: s.gens.1,
    };
    Some((
        ws,
        user,
        BoardId(s.board),
        gens,
        query,
    ))
}

fn hash_tag(key: &str) -> &str {
    let open = key.find('{').expect("a hash tag");
    let close = key[open..].find('}').expect("a closed hash tag") + open;
    &key[open + 1..close]
}

fuzz_target!(|input: Input<'_>| {
    let Ok(space) = KeySpace::new(input.namespace) else {
        return;
    };
    let (Some(a), Some(b)) = (parse(&input.a), parse(&input.b)) else {
        return;
    };
    let counts = |p: &Parsed| space.counts(&p.0, p.3, &p.1);
    let list = |p: &Parsed| space.contacts(&p.0, p.2, p.3, &p.4);
    for p in [&a, &b] {
        assert_eq!(hash_tag(&counts(p)), p.0.as_str());
        assert_eq!(hash_tag(&list(p)), p.0.as_str());
    }
    let same_counts = (&a.0, &a.1, a.3) == (&b.0, &b.1, b.3);
    assert_eq!(counts(&a) == counts(&b), same_counts);
    let same_list = (&a.0, a.2, a.3, a.4.canonical(), a.4.page, &a.4.after)
        == (&b.0, b.2, b.3, b.4.canonical(), b.4.page, &b.4.after);
    assert_eq!(list(&a) == list(&b), same_list);
});
