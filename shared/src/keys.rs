//! Every cache key of the edge and the origin is built here. A key carries a format
//! version, the namespace, the tenant and the generations that invalidation bumps, so
//! invalidating is O(1) (old keys become unreachable) and a value written by an older
//! format is simply never looked up.

use std::collections::HashMap;
use std::hash::BuildHasher;

use sha2::{Digest, Sha256};

use crate::message_search::MessageSearch;
use crate::messages::{ConversationQuery, MessageQuery};
use crate::query::{ContactListQuery, Filter, SortBy};
use crate::{BoardId, ConversationId, InputError, UserId, WorkspaceId};

/// Bumped whenever the layout of a key or a cached value changes (v2: hash tags; v3: the
/// edge's generations restart in a Durable Object, and it stores data without the
/// origin's `_cache`; v4: the edge's pages start with their `Rows` stamp, which a worker
/// before it would serve as the page).
pub const FORMAT_VERSION: &str = "v4";

/// The generations a key depends on. `workspace` is bumped by a workspace-wide
/// invalidation; `scope` by the narrower ones the key's answer depends on (the counts, or
/// what of one board a page shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Generations {
    pub workspace: u64,
    pub scope: u64,
}

impl Generations {
    /// The generations a key depending on `scopes` is built on, from a workspace's
    /// counters as stored (Redis hash at the origin, KV value at the edge); a missing
    /// counter is 0. Counters only grow, so their sum moves whenever any of them does and
    /// one number in the key stands for all of them.
    pub fn from_fields<S: BuildHasher>(
        fields: &HashMap<String, u64, S>,
        scopes: &[GenerationScope],
    ) -> Self {
        Self::from_fields_of(fields, Scopes::Listed(scopes))
    }

    /// `from_fields` for scopes listed or named.
    pub fn from_fields_of<S: BuildHasher>(
        fields: &HashMap<String, u64, S>,
        scopes: Scopes<'_>,
    ) -> Self {
        Self::summed(scopes, |name| Some(fields.get(name).copied().unwrap_or(0)))
            .unwrap_or_default()
    }

    /// `from_fields` for a partial copy of the counters (the origin mirrors only the
    /// fields its reads use): `None` when a counter the key depends on is not in it.
    pub fn from_known<S: BuildHasher>(
        fields: &HashMap<String, u64, S>,
        scopes: Scopes<'_>,
    ) -> Option<Self> {
        Self::summed(scopes, |name| fields.get(name).copied())
    }

    /// Every L1 hit sums these, so listed scopes' field names are written into one buffer
    /// rather than allocated one by one, and named ones are not written at all.
    fn summed(scopes: Scopes<'_>, get: impl Fn(&str) -> Option<u64>) -> Option<Self> {
        let mut scope = 0u64;
        match scopes {
            Scopes::Listed(listed) => {
                let mut name = String::with_capacity(32);
                for s in listed {
                    name.clear();
                    s.push_field(&mut name);
                    scope = scope.wrapping_add(get(&name)?);
                }
            }
            Scopes::Named(named) => {
                for name in &named.0 {
                    scope = scope.wrapping_add(get(name)?);
                }
            }
        }
        Some(Self {
            workspace: get(WORKSPACE_FIELD)?,
            scope,
        })
    }
}

/// The field of the workspace-wide counter (`GenerationScope::Workspace`).
const WORKSPACE_FIELD: &str = "ws";

/// The scopes a key depends on, as `Generations` sums them: listed, or by the field names
/// of their counters written out once.
#[derive(Debug, Clone, Copy)]
pub enum Scopes<'a> {
    Listed(&'a [GenerationScope]),
    Named(&'a FieldNames),
}

/// The field names of some scopes' counters. A connection asking for the same page again
/// and again keeps its page's (the origin's hit path), where writing them on every hit was
/// about 4% of a page hit's instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldNames(Box<[Box<str>]>);

impl FieldNames {
    pub fn of(scopes: &[GenerationScope]) -> Self {
        Self(scopes.iter().map(|s| s.field().into()).collect())
    }
}

/// Which generation counter a write or an invalidation bumps. A board has several, so
/// that an edit which moves no contact leaves most of the board's pages reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GenerationScope {
    Workspace,
    Counts,
    /// Anything on the board: contacts created, deleted, moved between boards or columns,
    /// archived, or changed in ways nobody described.
    Board(BoardId),
    /// Which of the board's contacts a filter matches.
    View(BoardId, Filter),
    /// The board's order by one sort.
    Order(BoardId, SortBy),
    /// What a search of the board matches.
    Search(BoardId),
    /// Edits of the board's contacts that changed none of the above. Not part of any key:
    /// a cached page records the value it was filled at and, once it moves, is checked
    /// against the board's log of edited contacts (a page not showing them stays).
    Rows(BoardId),
    /// The order and membership of the workspace's conversation list: a conversation
    /// started, or a message posted (which moves its conversation to the top).
    Conversations,
    /// The newest messages of a conversation: bumped by each new message, and part of the
    /// head page's key only, so appending leaves every older page reachable.
    Head(ConversationId),
    /// A message of the conversation edited or deleted: part of every page's key.
    Thread(ConversationId),
    /// Part of every page of messages' key: the edge's object folds the `Head` and `Thread`
    /// counters of idle conversations into it (raising it past their sum, so no key made
    /// before comes back), which keeps its table as large as what is active.
    Threads,
    /// Every message search of the workspace: bumped by changes whose words are unknown
    /// (an edit, a delete, another writer's message, a contact renamed or deleted).
    Said,
    /// The message searches whose narrowest word falls in this bucket
    /// (`MessageSearch::bucket`): bumped by a new message with such a word.
    Words(u16),
}

impl GenerationScope {
    /// The field of the workspace's generation hash that holds this counter.
    pub fn field(self) -> String {
        let mut name = String::new();
        self.push_field(&mut name);
        name
    }

    /// Writes `field()` to `out`.
    pub fn push_field(self, out: &mut String) {
        let mut digits = itoa::Buffer::new();
        let (letter, id, rest) = match self {
            Self::Workspace => return out.push_str(WORKSPACE_FIELD),
            Self::Counts => return out.push_str("counts"),
            Self::Conversations => return out.push_str("cv"),
            Self::Threads => return out.push_str("th"),
            Self::Said => return out.push_str("said"),
            Self::Words(bucket) => {
                out.push('w');
                return out.push_str(digits.format(bucket));
            }
            Self::Board(b) => ('b', b.0, ""),
            Self::View(b, f) => {
                out.push('b');
                out.push_str(digits.format(b.0));
                out.push_str("f:");
                return out.push_str(f.as_str());
            }
            Self::Order(b, s) => {
                out.push('b');
                out.push_str(digits.format(b.0));
                out.push_str("o:");
                return out.push_str(s.as_str());
            }
            Self::Search(b) => ('b', b.0, "s"),
            Self::Rows(b) => ('b', b.0, "r"),
            Self::Head(c) => ('c', c.0, "h"),
            Self::Thread(c) => ('c', c.0, "t"),
        };
        out.push(letter);
        out.push_str(digits.format(id));
        out.push_str(rest);
    }

    /// What a page of `board` answering `q` depends on (besides `Rows`): the board, its
    /// order, and the filter's and the search's matches. Every filter but `all` and
    /// `archived` reads a field an edit can change (those two change by archiving, a
    /// change of the whole board).
    pub fn of_page(board: BoardId, q: &ContactListQuery) -> Vec<Self> {
        let mut scopes = vec![Self::Board(board), Self::Order(board, q.sort_by)];
        if !matches!(q.filter, Filter::All | Filter::Archived) {
            scopes.push(Self::View(board, q.filter));
        }
        if q.search.is_some() {
            scopes.push(Self::Search(board));
        }
        scopes
    }

    /// What a message search depends on: the searches of its narrowest word's bucket, and
    /// every search (changes whose words are unknown).
    pub fn of_message_search(q: &MessageSearch) -> Vec<Self> {
        vec![Self::Said, Self::Words(q.bucket())]
    }

    /// What a page of messages depends on: every page on the thread's edits, the head
    /// page also on what was appended.
    pub fn of_messages(q: &MessageQuery) -> Vec<Self> {
        let mut scopes = vec![Self::Threads, Self::Thread(q.conversation)];
        if q.is_head() {
            scopes.push(Self::Head(q.conversation));
        }
        scopes
    }
}

/// Builds keys under one namespace, so tests and deployments sharing a Redis never meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    /// `{namespace}:{FORMAT_VERSION}`, the start of every key (built once: keys are
    /// built on every read).
    root: String,
}

impl KeySpace {
    pub fn new(namespace: &str) -> Result<Self, InputError> {
        let ok = !namespace.is_empty()
            && namespace.len() <= 32
            && namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return Err(InputError::new(
                "invalid_namespace",
                "cache namespace must be 1 to 32 characters of a-z, 0-9, '_' or '-'",
            ));
        }
        Ok(Self {
            root: format!("{namespace}:{FORMAT_VERSION}"),
        })
    }

    fn root(&self) -> &str {
        &self.root
    }

    /// `counts:{workspace}:{user}` of API.md, with generations. The workspace is the key's
    /// Redis Cluster hash tag: all of a workspace's keys, its generation hash and its fill
    /// locks live in one slot, so anything that must touch several of them together can.
    pub fn counts(&self, ws: &WorkspaceId, gens: Generations, user: &UserId) -> String {
        let mut key = self.start("counts", ws, user.as_str().len());
        push_generations(&mut key, gens);
        key.push(':');
        key.push_str(user.as_str());
        key
    }

    /// `{root}:{kind}:{{ws}}`, with room for the generations and `more` bytes. Keys are
    /// pushed piece by piece: every L1 hit builds one, and a formatter costs several
    /// times more.
    fn start(&self, kind: &str, ws: &WorkspaceId, more: usize) -> String {
        let len = self.root.len() + kind.len() + ws.as_str().len() + 48 + more;
        let mut key = String::with_capacity(len);
        for part in [self.root(), ":", kind, ":{", ws.as_str(), "}"] {
            key.push_str(part);
        }
        key
    }

    /// `contacts:{workspace}:board_{id}:{query-hash}:page:{n}` of API.md, with generations;
    /// a cursor page ends in `:cursor:{position-hash}` instead, one entry per cursor.
    pub fn contacts(
        &self,
        ws: &WorkspaceId,
        board: BoardId,
        gens: Generations,
        query: &ContactListQuery,
    ) -> String {
        self.contacts_with_tail(ws, board, gens, &contacts_tail(query))
    }

    /// `contacts`, given the part after the generations that `contacts_tail` wrote: the
    /// hashes of a query, which a caller that sees the same query again can keep.
    pub fn contacts_with_tail(
        &self,
        ws: &WorkspaceId,
        board: BoardId,
        gens: Generations,
        tail: &str,
    ) -> String {
        let mut key = self.start("contacts", ws, 27 + tail.len());
        key.push_str(":board_");
        key.push_str(itoa::Buffer::new().format(board.0));
        push_generations(&mut key, gens);
        key.push_str(tail);
        key
    }

    /// A page of a conversation's messages, with generations: the head page, or the page
    /// before a message.
    pub fn messages(&self, ws: &WorkspaceId, gens: Generations, q: &MessageQuery) -> String {
        let position = match q.before_id() {
            None => "head".to_owned(),
            Some(id) => format!("before_{id}"),
        };
        format!(
            "{}:messages:{{{ws}}}:conv_{}:g{}.{}:limit_{}:{position}",
            self.root(),
            q.conversation,
            gens.workspace,
            gens.scope,
            q.limit,
        )
    }

    /// A message search of the workspace (API.md: `search:{workspaceId}:{query-hash}`),
    /// with generations.
    pub fn message_search(&self, ws: &WorkspaceId, gens: Generations, q: &MessageSearch) -> String {
        format!(
            "{}:search:{{{ws}}}:g{}.{}:{}",
            self.root(),
            gens.workspace,
            gens.scope,
            query_hash(&q.canonical()),
        )
    }

    /// A page of the workspace's conversation list, with generations.
    pub fn conversations(
        &self,
        ws: &WorkspaceId,
        gens: Generations,
        q: &ConversationQuery,
    ) -> String {
        format!(
            "{}:conversations:{{{ws}}}:g{}.{}:{}",
            self.root(),
            gens.workspace,
            gens.scope,
            query_hash(&q.canonical()),
        )
    }

    /// The Redis hash holding every generation counter of one workspace, so that one
    /// read fetches them all and one HINCRBY bumps one.
    pub fn generations(&self, ws: &WorkspaceId) -> String {
        format!("{}:gen:{{{ws}}}", self.root())
    }

    /// The Redis list of a board's latest edits (`Rows` value, contact), newest first.
    pub fn edits(&self, ws: &WorkspaceId, board: BoardId) -> String {
        format!("{}:edits:{{{ws}}}:board_{board}", self.root())
    }

    /// Held while one instance fills `key`, so the others wait instead of querying too.
    pub fn fill_lock(&self, key: &str) -> String {
        format!("{key}:lock")
    }

    /// Claimed by the one origin instance that acts on a store notice of `what` (a board
    /// or conversation) from transaction `tx`.
    pub fn notice(&self, ws: &WorkspaceId, what: &str, tx: u64) -> String {
        format!("{}:notice:{{{ws}}}:{what}:{tx}", self.root())
    }

    /// The sequence numbering a workspace's live changes.
    pub fn live_sequence(&self, ws: &WorkspaceId) -> String {
        format!("{}:live:{{{ws}}}", self.root())
    }

    /// A single-use ticket for a workspace's live changes.
    pub fn live_ticket(&self, ticket: &str) -> String {
        format!("{}:ticket:{ticket}", self.root())
    }

    /// The stream of changes waiting to reach the edge (the origin's outbox).
    pub fn edge_outbox(&self) -> String {
        format!("{}:edge-outbox", self.root())
    }

    /// The edge's record of when the origin last found its outbox drained (a Durable
    /// Object beside the workspaces' generations; no workspace id has this form).
    pub fn edge_drained(&self) -> String {
        format!("{}:edge-drained", self.root())
    }

    /// The pub/sub channel on which instances tell each other what changed.
    pub fn channel(&self) -> String {
        format!("{}:events", self.root())
    }

    /// The hash of the instances listening on the channel, each with when its entry
    /// expires: on a Redis Cluster, PUBLISH counts only the receiving node's subscribers,
    /// so a write waits for the acknowledgements of the instances listed here.
    pub fn instances(&self) -> String {
        format!("{}:instances", self.root())
    }

    /// The hash of the workspaces an instance is writing (each with its writes in
    /// flight): when the instance leaves the registry, another moves them on, since a
    /// write it committed may have lost its invalidation with the process.
    pub fn intents(&self, instance: &str) -> String {
        format!("{}:intents:{instance}", self.root())
    }

    /// The channel on which an instance announces it released a key's fill lock, with the
    /// key as the message.
    pub fn fills_channel(&self) -> String {
        format!("{}:fills", self.root())
    }
}

/// The patterns API.md reports for a workspace-wide invalidation.
pub fn workspace_patterns(ws: &WorkspaceId) -> Vec<String> {
    vec![
        format!("counts:{ws}:*"),
        format!("contacts:{ws}:*"),
        format!("search:{ws}:*"),
        format!("messages:{ws}:*"),
    ]
}

/// The patterns API.md reports for a change inside one board.
pub fn board_patterns(ws: &WorkspaceId, board: BoardId) -> Vec<String> {
    vec![
        format!("contacts:{ws}:board_{board}:*"),
        format!("counts:{ws}:*"),
    ]
}

/// `:g{workspace}.{scope}`.
fn push_generations(key: &mut String, gens: Generations) {
    let mut digits = itoa::Buffer::new();
    key.push_str(":g");
    key.push_str(digits.format(gens.workspace));
    key.push('.');
    key.push_str(digits.format(gens.scope));
}

/// What ends a page's key after its generations: `:{query-hash}:page:{n}`, or
/// `:{query-hash}:cursor:{position-hash}`.
pub fn contacts_tail(query: &ContactListQuery) -> String {
    let mut tail = String::with_capacity(56);
    tail.push(':');
    tail.push_str(&query_hash(&query.canonical()));
    match &query.after {
        None => {
            tail.push_str(":page:");
            tail.push_str(itoa::Buffer::new().format(query.page));
        }
        Some(after) => {
            let at = serde_json::json!([after.page, after.value, after.id]).to_string();
            tail.push_str(":cursor:");
            tail.push_str(&query_hash(&at));
        }
    }
    tail
}

/// 64 bits of SHA-256: collisions are negligible at any realistic number of distinct queries.
pub fn query_hash(canonical: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(canonical.as_bytes());
    let mut hex = String::with_capacity(16);
    for b in &digest[..8] {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::query::{Filter, SortBy, SortOrder};

    fn ws(s: &str) -> WorkspaceId {
        WorkspaceId::parse(s).expect("valid workspace")
    }

    fn user(s: &str) -> UserId {
        UserId::parse(s).expect("valid user")
    }

    fn space() -> KeySpace {
        KeySpace::new("ec").expect("valid namespace")
    }

    #[test]
    fn keys_follow_the_shapes_of_the_contract() {
        let q = ContactListQuery::default();
        let gens = Generations {
            workspace: 3,
            scope: 7,
        };
        let key = space().contacts(&ws("15213"), BoardId(123), gens, &q);
        assert!(
            key.starts_with("ec:v4:contacts:{15213}:board_123:g3.7:"),
            "{key}"
        );
        assert!(key.ends_with(":page:1"), "{key}");
        assert_eq!(
            space().counts(&ws("15213"), gens, &user("u9")),
            "ec:v4:counts:{15213}:g3.7:u9"
        );
    }

    #[test]
    fn each_cursor_has_a_key_of_its_own_apart_from_page_keys() {
        let at = |page: u32, id: i64| ContactListQuery {
            page,
            after: Some(crate::cursor::Cursor {
                page,
                value: "2026-01-01T00:00:00Z".into(),
                id,
            }),
            ..ContactListQuery::default()
        };
        let key = |q: &ContactListQuery| {
            space().contacts(&ws("15213"), BoardId(1), Generations::default(), q)
        };
        let by_page = ContactListQuery {
            page: 2,
            ..ContactListQuery::default()
        };
        let keys: HashSet<String> = [
            key(&at(2, 1)),
            key(&at(2, 2)),
            key(&at(3, 1)),
            key(&by_page),
        ]
        .into_iter()
        .collect();
        assert_eq!(keys.len(), 4);
        assert!(key(&at(2, 1)).contains(":cursor:"));
    }

    /// What Redis Cluster hashes: the text between the first `{` and the next `}`.
    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').expect("a hash tag");
        let close = key[open..].find('}').expect("a closed hash tag") + open;
        &key[open + 1..close]
    }

    #[test]
    fn every_key_of_a_workspace_hashes_to_its_slot() {
        let s = space();
        let gens = Generations {
            workspace: 1,
            scope: 2,
        };
        for w in WORKSPACES {
            let list = s.contacts(&ws(w), BoardId(9), gens, &ContactListQuery::default());
            let counts = s.counts(&ws(w), gens, &user("u1"));
            for key in [
                s.generations(&ws(w)),
                s.edits(&ws(w), BoardId(9)),
                s.fill_lock(&list),
                s.fill_lock(&counts),
                list,
                counts,
            ] {
                assert_eq!(hash_tag(&key), w, "{key}");
            }
        }
    }

    const GENS: [(u64, u64); 5] = [(0, 0), (0, 1), (1, 0), (10, 1), (1, 10)];
    const WORKSPACES: [&str; 5] = ["1", "12", "15213", "a-b", "a_b"];

    #[test]
    fn distinct_list_queries_give_distinct_keys() {
        let space = space();
        let mut seen = HashSet::new();
        let mut count = 0;
        for w in WORKSPACES {
            for board in [1, 12, 123] {
                for (workspace, scope) in GENS {
                    let gens = Generations { workspace, scope };
                    for filter in Filter::ALL {
                        for sort in [
                            (SortBy::Name, SortOrder::Asc),
                            (SortBy::CreatedAt, SortOrder::Desc),
                        ] {
                            for search in [None, Some("a".to_owned()), Some("a\",1".to_owned())] {
                                for page in [1, 2, 11] {
                                    let q = ContactListQuery {
                                        page,
                                        filter: *filter,
                                        sort_by: sort.0,
                                        sort_order: sort.1,
                                        search: search.clone(),
                                        ..ContactListQuery::default()
                                    };
                                    seen.insert(space.contacts(&ws(w), BoardId(board), gens, &q));
                                    count += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(seen.len(), count, "two different list queries shared a key");
    }

    #[test]
    fn distinct_counts_requests_give_distinct_keys() {
        let space = space();
        let mut seen = HashSet::new();
        let mut count = 0;
        for w in WORKSPACES {
            for (workspace, scope) in GENS {
                for u in ["u1", "u11", "1", "a-b"] {
                    seen.insert(space.counts(&ws(w), Generations { workspace, scope }, &user(u)));
                    count += 1;
                }
            }
        }
        assert_eq!(
            seen.len(),
            count,
            "two different counts requests shared a key"
        );
    }

    #[test]
    fn every_counter_of_a_board_has_a_field_of_its_own() {
        let b = BoardId(1);
        let mut scopes = vec![
            GenerationScope::Workspace,
            GenerationScope::Counts,
            GenerationScope::Board(b),
            GenerationScope::Board(BoardId(11)),
            GenerationScope::Search(b),
            GenerationScope::Rows(b),
        ];
        scopes.extend(Filter::ALL.iter().map(|f| GenerationScope::View(b, *f)));
        scopes.extend(SortBy::ALL.iter().map(|s| GenerationScope::Order(b, *s)));
        let fields: HashSet<String> = scopes.iter().map(|s| s.field()).collect();
        assert_eq!(fields.len(), scopes.len());
    }

    #[test]
    fn field_names_are_the_stored_ones() {
        // Redis hashes and the edge's objects hold counters under these names.
        let (b, c) = (BoardId(12), ConversationId(7));
        for (scope, name) in [
            (GenerationScope::Workspace, "ws"),
            (GenerationScope::Counts, "counts"),
            (GenerationScope::Conversations, "cv"),
            (GenerationScope::Board(b), "b12"),
            (GenerationScope::View(b, Filter::Open), "b12f:open"),
            (GenerationScope::Order(b, SortBy::Name), "b12o:name"),
            (GenerationScope::Search(b), "b12s"),
            (GenerationScope::Rows(b), "b12r"),
            (GenerationScope::Head(c), "c7h"),
            (GenerationScope::Thread(c), "c7t"),
            (GenerationScope::Threads, "th"),
        ] {
            assert_eq!(scope.field(), name);
        }
    }

    /// A list of `filter` searched for "ann": the page's scopes include its view and its
    /// search.
    fn searched(filter: Filter) -> ContactListQuery {
        ContactListQuery {
            filter,
            search: Some("ann".to_owned()),
            ..ContactListQuery::default()
        }
    }

    #[test]
    fn scopes_named_once_sum_as_the_same_scopes_listed() {
        let b = BoardId(4);
        let listed = GenerationScope::of_page(b, &searched(Filter::Open));
        let named = FieldNames::of(&listed);
        let mut fields: HashMap<String, u64> = HashMap::new();
        for (i, scope) in listed
            .iter()
            .chain([&GenerationScope::Workspace])
            .enumerate()
        {
            fields.insert(scope.field(), 10 + i as u64);
        }
        let sum = Generations::from_known(&fields, Scopes::Listed(&listed));
        assert!(sum.is_some_and(|g| g.workspace > 0 && g.scope > 0));
        assert_eq!(Generations::from_known(&fields, Scopes::Named(&named)), sum);
        let all = Generations::from_fields_of(&fields, Scopes::Named(&named));
        assert_eq!(Some(all), sum);
        fields.remove(&GenerationScope::Search(b).field());
        assert_eq!(
            Generations::from_known(&fields, Scopes::Named(&named)),
            None
        );
        assert_eq!(
            Generations::from_fields_of(&fields, Scopes::Named(&named)),
            Generations::from_fields(&fields, &listed),
            "a missing counter is 0 either way"
        );
    }

    #[test]
    fn a_page_key_moves_with_any_counter_it_depends_on_and_no_other() {
        let b = BoardId(4);
        let scopes = GenerationScope::of_page(b, &searched(Filter::Favorites));
        let gens = |fields: &HashMap<String, u64>| Generations::from_fields(fields, &scopes);
        let mut fields = HashMap::new();
        let start = gens(&fields);
        for unrelated in [
            GenerationScope::Counts,
            GenerationScope::Rows(b),
            GenerationScope::View(b, Filter::Open),
            GenerationScope::Order(b, SortBy::UpdatedAt),
            GenerationScope::Board(BoardId(5)),
        ] {
            *fields.entry(unrelated.field()).or_default() += 1;
            assert_eq!(gens(&fields), start, "{unrelated:?}");
        }
        let mut last = start;
        for related in [
            GenerationScope::Board(b),
            GenerationScope::View(b, Filter::Favorites),
            GenerationScope::Order(b, SortBy::CreatedAt),
            GenerationScope::Search(b),
            GenerationScope::Workspace,
        ] {
            *fields.entry(related.field()).or_default() += 1;
            assert_ne!(gens(&fields), last, "{related:?}");
            last = gens(&fields);
        }
    }

    #[test]
    fn a_namespace_with_separators_is_rejected() {
        for bad in ["", "a:b", "A", "a b", "a*"] {
            assert!(KeySpace::new(bad).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod injectivity {
    use proptest::prelude::*;

    use super::*;
    use crate::query::{Filter, SortBy, SortOrder};

    /// Everything a list key depends on, generated in its parsed (canonical) form.
    type ListInput = (
        String,
        i64,
        (u64, u64),
        u32,
        u32,
        usize,
        Option<String>,
        Option<i64>,
        bool,
        bool,
        String,
    );

    fn list_input() -> impl Strategy<Value = ListInput> {
        (
            "[A-Za-z0-9_-]{1,8}",
            1i64..50,
            (0u64..4, 0u64..4),
            1u32..4,
            1u32..101,
            0usize..Filter::ALL.len(),
            proptest::option::of("[a-z0-9 |:\"\\\\,{}]{1,6}"),
            proptest::option::of(1i64..5),
            any::<bool>(),
            any::<bool>(),
            "[a-z0-9_]{1,4}",
        )
    }

    fn build(input: &ListInput) -> (String, (WorkspaceId, i64, (u64, u64), ContactListQuery)) {
        let (w, board, g, page, per_page, filter, search, column_id, by_name, asc, user) =
            input.clone();
        let filter = Filter::ALL[filter];
        let query = ContactListQuery {
            page,
            per_page,
            filter,
            search,
            column_id,
            sort_by: if by_name {
                SortBy::Name
            } else {
                SortBy::CreatedAt
            },
            sort_order: if asc { SortOrder::Asc } else { SortOrder::Desc },
            user: (filter == Filter::AssignedToMe)
                .then(|| UserId::parse(&user).expect("valid user")),
            after: None,
        };
        let ws = WorkspaceId::parse(&w).expect("valid workspace");
        let gens = Generations {
            workspace: g.0,
            scope: g.1,
        };
        let key =
            KeySpace::new("ec")
                .expect("namespace")
                .contacts(&ws, BoardId(board), gens, &query);
        (key, (ws, board, g, query))
    }

    proptest! {
        #[test]
        fn list_keys_are_equal_exactly_when_their_inputs_are(a in list_input(), b in list_input()) {
            let (ka, ia) = build(&a);
            let (kb, ib) = build(&b);
            prop_assert_eq!(ka == kb, ia == ib);
        }

        #[test]
        fn counts_keys_are_equal_exactly_when_their_inputs_are(
            a in ("[A-Za-z0-9_-]{1,6}", 0u64..3, 0u64..3, "[a-z0-9_-]{1,4}"),
            b in ("[A-Za-z0-9_-]{1,6}", 0u64..3, 0u64..3, "[a-z0-9_-]{1,4}"),
        ) {
            let key = |(w, g1, g2, u): &(String, u64, u64, String)| {
                let ws = WorkspaceId::parse(w).expect("valid workspace");
                let user = UserId::parse(u).expect("valid user");
                KeySpace::new("ec").expect("namespace").counts(&ws, Generations { workspace: *g1, scope: *g2 }, &user)
            };
            prop_assert_eq!(key(&a) == key(&b), a == b);
        }
    }
}
