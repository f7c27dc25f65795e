//! What a change makes stale, decided once for every path that learns of one: the origin's
//! writes, the store's change notices, an admin's invalidation and the edge's.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::keys::{board_patterns, workspace_patterns, GenerationScope};
use crate::model::Contact;
use crate::query::{Filter, SortBy};
use crate::{BoardId, ContactId, ConversationId, InputError, WorkspaceId};

/// A change as the caches see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Contacts on these boards were created, moved or deleted, or changed in ways nobody
    /// described.
    Boards(Vec<BoardId>),
    /// One contact edited in place (same board, column and archive flag).
    Edited(Edit),
    /// A conversation of the workspace changed, as `Thread` says.
    Conversation(ConversationId, Thread),
    /// Messages with words in these buckets were posted (`message_search::buckets_of`),
    /// or, `None`, messages changed in ways that may change any search of them.
    Said(Option<Vec<u16>>),
    /// Anything in the workspace may have changed.
    Workspace,
}

/// What happened to a conversation; messages are appended far more often than anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Thread {
    /// It was started: the workspace's conversation list changed.
    Started,
    /// A message was posted: its head page changed, and the list's order.
    Appended,
    /// A message was edited or deleted: any page of it may show that message.
    Edited,
}

/// What an in-place edit of one contact changed: the lists of its board that it entered,
/// left or moved in. Most CRM writes are these (a message touches `last_activity_at`, an
/// agent flags or assigns), and each leaves the board's other lists, and the pages of the
/// changed lists not showing the contact, as they were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub board: BoardId,
    pub contact: i64,
    /// Filters the contact may have entered or left.
    pub views: Vec<Filter>,
    /// Sorts whose field changed.
    pub orders: Vec<SortBy>,
    /// Whether a field a search matches (name, email, company, phone) changed.
    pub searched: bool,
}

/// Whether the contact may have entered or left `filter` (its predicate at the origin is
/// in store/filters.rs): a field it reads differs between the two versions, or, for
/// recent activity, one version is in the window and the other not (a chat touches its
/// contact's activity with every message, and an already active contact stays in).
fn view_changed(
    filter: Filter,
    old: &Contact,
    new: &Contact,
    recently_active: &impl Fn(&str) -> bool,
) -> bool {
    match filter {
        Filter::All | Filter::Archived => old.archived != new.archived,
        Filter::Open | Filter::Closed => old.status != new.status,
        Filter::Unassigned | Filter::AssignedToMe => old.assigned_to != new.assigned_to,
        Filter::HighPriority | Filter::MediumPriority | Filter::LowPriority => {
            old.priority != new.priority
        }
        Filter::NeedsResponse => old.needs_response != new.needs_response,
        Filter::FollowUp => old.follow_up != new.follow_up,
        Filter::Favorites => old.favorite != new.favorite,
        Filter::UnhappyCustomers => old.sentiment != new.sentiment,
        Filter::NewCustomers => old.created_at != new.created_at,
        Filter::RecentActivity => {
            recently_active(&old.last_activity_at) != recently_active(&new.last_activity_at)
        }
    }
}

fn order_changed(sort: SortBy, old: &Contact, new: &Contact) -> bool {
    match sort {
        SortBy::CreatedAt => old.created_at != new.created_at,
        SortBy::UpdatedAt => old.updated_at != new.updated_at,
        SortBy::Name => old.name != new.name,
        SortBy::LastActivityAt => old.last_activity_at != new.last_activity_at,
        // Best match first, ties by recent activity.
        SortBy::Relevance => {
            searched_changed(old, new) || old.last_activity_at != new.last_activity_at
        }
    }
}

/// Whether a field a search matches changed.
fn searched_changed(old: &Contact, new: &Contact) -> bool {
    old.name != new.name
        || old.email != new.email
        || old.company != new.company
        || old.phone != new.phone
}

impl Changed {
    /// What updating a contact from `old` to `new` changed. Moving it to another board or
    /// column, or archiving it, changes its boards whole. `recently_active` says whether a
    /// `last_activity_at` is inside the `recent_activity` filter's window now (erring
    /// towards outside near its edge).
    pub fn update(old: &Contact, new: &Contact, recently_active: impl Fn(&str) -> bool) -> Self {
        let (from, to) = (BoardId(old.board_id), BoardId(new.board_id));
        if from != to {
            return Self::Boards(vec![from, to]);
        }
        if old.column_id != new.column_id || old.archived != new.archived {
            return Self::Boards(vec![to]);
        }
        Self::Edited(Edit {
            board: to,
            contact: new.id,
            views: Filter::ALL
                .iter()
                .copied()
                .filter(|f| view_changed(*f, old, new, &recently_active))
                .collect(),
            orders: SortBy::ALL
                .iter()
                .copied()
                .filter(|s| order_changed(*s, old, new))
                .collect(),
            searched: searched_changed(old, new),
        })
    }

    /// The generations to bump. A contact write changes its boards' pages and may change
    /// any count, so each board goes with the counts (and the conversation list, which
    /// loses a deleted contact's conversations); an edit, only the lists it changed
    /// (and the counts, each of which is a filter's, when it changed a filter's matches),
    /// with `Rows` first: its new value is the edit's place in the board's edit log. The
    /// workspace generation is part of every key of the workspace.
    pub fn scopes(&self) -> Vec<GenerationScope> {
        match self {
            Self::Boards(boards) => boards
                .iter()
                .map(|b| GenerationScope::Board(*b))
                // A deleted contact's messages leave every search of them.
                .chain([
                    GenerationScope::Counts,
                    GenerationScope::Conversations,
                    GenerationScope::Said,
                ])
                .collect(),
            Self::Edited(e) => {
                let b = e.board;
                let mut scopes = vec![GenerationScope::Rows(b)];
                scopes.extend(e.views.iter().map(|f| GenerationScope::View(b, *f)));
                scopes.extend(e.orders.iter().map(|s| GenerationScope::Order(b, *s)));
                if e.searched {
                    // Message search hits carry their contact's name.
                    scopes.extend([GenerationScope::Search(b), GenerationScope::Said]);
                }
                if !e.views.is_empty() {
                    scopes.push(GenerationScope::Counts);
                }
                scopes
            }
            Self::Conversation(_, Thread::Started) => vec![GenerationScope::Conversations],
            Self::Conversation(c, Thread::Appended) => {
                vec![GenerationScope::Head(*c), GenerationScope::Conversations]
            }
            // A hit shows the message's body: its old words' searches must miss too.
            Self::Conversation(c, Thread::Edited) => {
                vec![GenerationScope::Thread(*c), GenerationScope::Said]
            }
            Self::Said(None) => vec![GenerationScope::Said],
            Self::Said(Some(buckets)) => {
                buckets.iter().map(|b| GenerationScope::Words(*b)).collect()
            }
            Self::Workspace => vec![GenerationScope::Workspace],
        }
    }

    /// The boards the change is confined to (none for a conversation); `None` for the
    /// whole workspace.
    pub fn boards(&self) -> Option<Vec<BoardId>> {
        match self {
            Self::Boards(boards) => Some(boards.clone()),
            Self::Edited(e) => Some(vec![e.board]),
            Self::Conversation(..) | Self::Said(_) => Some(Vec::new()),
            Self::Workspace => None,
        }
    }

    /// The key patterns API.md reports for the change.
    pub fn patterns(&self, ws: &WorkspaceId) -> Vec<String> {
        match self {
            Self::Conversation(c, _) => vec![format!("messages:{ws}:conv_{c}:*")],
            Self::Said(_) => vec![format!("search:{ws}:*")],
            Self::Workspace => workspace_patterns(ws),
            Self::Boards(_) | Self::Edited(_) => {
                let mut patterns: Vec<String> = self
                    .boards()
                    .unwrap_or_default()
                    .iter()
                    .flat_map(|b| board_patterns(ws, *b))
                    .collect();
                patterns.dedup();
                patterns
            }
        }
    }

    /// Whether a workspace member may ask for it; a workspace-wide one needs an admin.
    pub fn needs_admin(&self) -> bool {
        matches!(self, Self::Workspace)
    }
}

/// What a live change names (API.md "Live changes"): a scope, and the board or
/// conversation it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LiveScope {
    Counts,
    Board,
    Conversation,
    /// Message searches may find something else: a client showing one searches again.
    Search,
    Workspace,
    Settings,
}

impl Changed {
    /// What browsers are told of the change: each board it touched and the counts when
    /// they may have moved, its conversation, or the whole workspace.
    pub fn live(&self) -> Vec<(LiveScope, Option<i64>)> {
        let counts = self.scopes().contains(&GenerationScope::Counts);
        match self {
            Self::Boards(_) | Self::Edited(_) => self
                .boards()
                .unwrap_or_default()
                .iter()
                .map(|b| (LiveScope::Board, Some(b.0)))
                .chain(counts.then_some((LiveScope::Counts, None)))
                .collect(),
            Self::Conversation(c, _) => vec![(LiveScope::Conversation, Some(c.0))],
            Self::Said(_) => vec![(LiveScope::Search, None)],
            Self::Workspace => vec![(LiveScope::Workspace, None)],
        }
    }
}

/// The actions the edge's invalidation accepts (API.md).
pub const EDGE_ACTIONS: [&str; 5] = [
    "contact_moved",
    "contact_updated",
    "contact_created",
    "contact_deleted",
    "workspace",
];

/// The edge's invalidation body: an `action` and, for a change inside one board, its
/// `boardId` (a number, or `"board_N"`).
pub fn parse_edge_request(body: &str) -> Result<Changed, InputError> {
    let body: Value = serde_json::from_str(body)
        .map_err(|_| InputError::new("invalid_json", "the body is not JSON"))?;
    let action = body["action"].as_str().unwrap_or("");
    if !EDGE_ACTIONS.contains(&action) {
        return Err(InputError::new(
            "invalid_action",
            format!("action must be one of {}", EDGE_ACTIONS.join(", ")),
        ));
    }
    let board = match &body["boardId"] {
        Value::Null => None,
        Value::Number(n) => Some(BoardId::parse(&n.to_string())?),
        Value::String(s) => Some(BoardId::parse(s.trim_start_matches("board_"))?),
        _ => {
            return Err(InputError::new(
                "invalid_board_id",
                "boardId must be a board id",
            ))
        }
    };
    Ok(match board {
        Some(b) => Changed::Boards(vec![b]),
        None => Changed::Workspace,
    })
}

/// A change the origin pushes to the edge (`POST /internal/changes`, with the internal
/// key): the workspace, and its boards or one of its conversations, or neither for the
/// whole workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Push {
    pub workspace_id: String,
    pub boards: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<(i64, Thread)>,
    /// A `Changed::Said`: the word buckets, empty for every search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<u16>>,
    /// A `Changed::Edited` (its board is `boards`' one): what the edit reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit: Option<PushedEdit>,
}

/// An in-place edit on the wire: the edge bumps the same scopes as the origin
/// (`Changed::scopes`) and logs the contact against its board's `Rows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushedEdit {
    pub contact: i64,
    pub views: Vec<String>,
    pub orders: Vec<String>,
    pub searched: bool,
}

impl Push {
    pub fn new(ws: &WorkspaceId, change: &Changed) -> Self {
        Self {
            workspace_id: ws.as_str().to_owned(),
            boards: change
                .boards()
                .map(|boards| boards.iter().map(|b| b.0).collect()),
            conversation: match change {
                Changed::Conversation(c, thread) => Some((c.0, *thread)),
                _ => None,
            },
            words: match change {
                Changed::Said(buckets) => Some(buckets.clone().unwrap_or_default()),
                _ => None,
            },
            edit: match change {
                Changed::Edited(e) => Some(PushedEdit {
                    contact: e.contact,
                    views: e.views.iter().map(|f| f.as_str().to_owned()).collect(),
                    orders: e.orders.iter().map(|s| s.as_str().to_owned()).collect(),
                    searched: e.searched,
                }),
                _ => None,
            },
        }
    }

    /// The pushed change, every id checked.
    pub fn parse(body: &str) -> Result<(WorkspaceId, Changed), InputError> {
        let push: Self = serde_json::from_str(body)
            .map_err(|e| InputError::new("invalid_json", e.to_string()))?;
        let ws = WorkspaceId::parse(&push.workspace_id)?;
        if let Some((id, thread)) = push.conversation {
            let id = ConversationId::parse(&id.to_string())?;
            return Ok((ws, Changed::Conversation(id, thread)));
        }
        if let Some(words) = push.words {
            if words
                .iter()
                .any(|b| *b >= crate::message_search::WORD_BUCKETS)
            {
                return Err(InputError::new(
                    "invalid_words",
                    "a word bucket is out of range",
                ));
            }
            return Ok((ws, Changed::Said((!words.is_empty()).then_some(words))));
        }
        if let Some(edit) = push.edit {
            let board = match push.boards.as_deref() {
                Some([board]) => BoardId::parse(&board.to_string())?,
                _ => {
                    return Err(InputError::new(
                        "invalid_edit",
                        "an edit names exactly one board",
                    ))
                }
            };
            let edit = Edit {
                board,
                contact: ContactId::parse(&edit.contact.to_string())?.0,
                views: edit
                    .views
                    .iter()
                    .map(|f| Filter::parse(f))
                    .collect::<Result<_, _>>()?,
                orders: edit
                    .orders
                    .iter()
                    .map(|s| SortBy::parse(s))
                    .collect::<Result<_, _>>()?,
                searched: edit.searched,
            };
            return Ok((ws, Changed::Edited(edit)));
        }
        let change = match push.boards {
            Some(boards) => Changed::Boards(
                boards
                    .iter()
                    .map(|b| BoardId::parse(&b.to_string()))
                    .collect::<Result<_, _>>()?,
            ),
            None => Changed::Workspace,
        };
        Ok((ws, change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_change_bumps_the_board_and_the_counts_and_a_workspace_change_everything() {
        let moved = Changed::Boards(vec![BoardId(3), BoardId(4)]);
        assert_eq!(
            moved.scopes(),
            vec![
                GenerationScope::Board(BoardId(3)),
                GenerationScope::Board(BoardId(4)),
                GenerationScope::Counts,
                GenerationScope::Conversations,
                GenerationScope::Said
            ]
        );
        assert!(!moved.needs_admin());
        assert_eq!(
            Changed::Workspace.scopes(),
            vec![GenerationScope::Workspace]
        );
        assert!(Changed::Workspace.needs_admin());
    }

    #[test]
    fn browsers_are_told_what_changed_never_the_data() {
        let moved = Changed::Boards(vec![BoardId(3), BoardId(4)]);
        assert_eq!(
            moved.live(),
            vec![
                (LiveScope::Board, Some(3)),
                (LiveScope::Board, Some(4)),
                (LiveScope::Counts, None)
            ]
        );
        assert_eq!(
            Changed::Conversation(ConversationId(8), Thread::Appended).live(),
            vec![(LiveScope::Conversation, Some(8))]
        );
        assert_eq!(
            Changed::Workspace.live(),
            vec![(LiveScope::Workspace, None)]
        );
        let phone_only = Changed::Edited(Edit {
            board: BoardId(3),
            contact: 1,
            views: vec![],
            orders: vec![SortBy::UpdatedAt],
            searched: false,
        });
        assert_eq!(phone_only.live(), vec![(LiveScope::Board, Some(3))]);
    }

    #[test]
    fn a_new_message_moves_only_its_head_and_an_edit_every_page_of_its_thread() {
        let c = ConversationId(9);
        let appended = Changed::Conversation(c, Thread::Appended).scopes();
        let edited = Changed::Conversation(c, Thread::Edited).scopes();
        let ws = WorkspaceId::parse("15213").expect("ws");
        let key = crate::cursor::CursorKey::for_tests();
        let head = crate::messages::MessageQuery::from_pairs([], &ws, c, &key).expect("head");
        let next = head.next_cursor(&key, &ws, 100);
        let older =
            crate::messages::MessageQuery::from_pairs([("before", next.as_str())], &ws, c, &key)
                .expect("older");
        let depends = |q, scopes: &[GenerationScope]| {
            GenerationScope::of_messages(q)
                .iter()
                .any(|s| scopes.contains(s))
        };
        assert!(depends(&head, &appended) && depends(&head, &edited));
        assert!(!depends(&older, &appended), "appending leaves older pages");
        assert!(depends(&older, &edited));
        assert!(appended.contains(&GenerationScope::Conversations));
        let other = crate::messages::MessageQuery::from_pairs([], &ws, ConversationId(10), &key)
            .expect("another conversation");
        assert!(!depends(&other, &appended) && !depends(&other, &edited));
        assert_eq!(
            Changed::Conversation(c, Thread::Edited).patterns(&ws),
            ["messages:15213:conv_9:*"]
        );
        assert!(!Changed::Conversation(c, Thread::Appended).needs_admin());
    }

    fn contact() -> Contact {
        serde_json::from_value(serde_json::json!({
            "id": 7, "workspace_id": "15213", "board_id": 3, "column_id": 1, "name": "Ann",
            "email": null, "phone": null, "company": null, "status": "open",
            "priority": "low", "assigned_to": null, "needs_response": false,
            "follow_up": false, "favorite": false, "archived": false, "sentiment": "neutral",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "last_activity_at": "2026-01-01T00:00:00Z", "custom_attributes": {}
        }))
        .expect("a contact")
    }

    #[test]
    fn an_edit_bumps_only_the_lists_it_changed_and_its_rows_first() {
        let old = contact();
        let edited = |f: fn(&mut Contact)| {
            let mut new = old.clone();
            new.updated_at = "2026-01-02T00:00:00Z".into();
            f(&mut new);
            Changed::update(&old, &new, |_| true)
        };
        let b = BoardId(3);
        let favorite = edited(|c| c.favorite = true);
        assert_eq!(
            favorite.scopes(),
            vec![
                GenerationScope::Rows(b),
                GenerationScope::View(b, Filter::Favorites),
                GenerationScope::Order(b, SortBy::UpdatedAt),
                GenerationScope::Counts
            ]
        );
        let attributes = edited(|c| c.custom_attributes = serde_json::json!({"plan": "team"}));
        assert_eq!(
            attributes.scopes(),
            vec![
                GenerationScope::Rows(b),
                GenerationScope::Order(b, SortBy::UpdatedAt)
            ],
            "a field no list reads changes no list and no count"
        );
        let phone = edited(|c| c.phone = Some("+1 555".into())).scopes();
        assert!(
            phone.contains(&GenerationScope::Search(b)),
            "searches match phones"
        );
        assert!(phone.contains(&GenerationScope::Order(b, SortBy::Relevance)));
        let touched = edited(|c| c.last_activity_at = "2026-01-02T00:00:00Z".into());
        assert_eq!(
            touched.scopes(),
            vec![
                GenerationScope::Rows(b),
                GenerationScope::Order(b, SortBy::UpdatedAt),
                GenerationScope::Order(b, SortBy::LastActivityAt),
                GenerationScope::Order(b, SortBy::Relevance)
            ],
            "a contact active before and after stays in recent activity: no count moves"
        );
        let mut woken = old.clone();
        woken.last_activity_at = "2026-01-02T00:00:00Z".into();
        let recent = |t: &str| t >= "2026-01-02";
        assert!(Changed::update(&old, &woken, recent)
            .scopes()
            .contains(&GenerationScope::View(b, Filter::RecentActivity)));
        let renamed = edited(|c| c.name = "Bo".into());
        assert!(renamed.scopes().contains(&GenerationScope::Search(b)));
        assert!(renamed
            .scopes()
            .contains(&GenerationScope::Order(b, SortBy::Name)));
        let assigned = edited(|c| c.assigned_to = Some("u1".into()));
        for f in [Filter::Unassigned, Filter::AssignedToMe] {
            assert!(assigned.scopes().contains(&GenerationScope::View(b, f)));
        }
    }

    #[test]
    fn moving_or_archiving_changes_whole_boards() {
        let old = contact();
        let mut moved = old.clone();
        moved.board_id = 4;
        assert_eq!(
            Changed::update(&old, &moved, |_| true),
            Changed::Boards(vec![BoardId(3), BoardId(4)])
        );
        for f in [
            |c: &mut Contact| c.column_id = 2,
            |c: &mut Contact| c.archived = true,
        ] {
            let mut new = old.clone();
            f(&mut new);
            assert_eq!(
                Changed::update(&old, &new, |_| true),
                Changed::Boards(vec![BoardId(3)])
            );
        }
    }

    #[test]
    fn edge_requests_name_an_action_and_maybe_a_board() {
        let parse = |s: &str| parse_edge_request(s).map_err(|e| e.code);
        assert_eq!(
            parse(r#"{"action":"contact_moved","boardId":7}"#),
            Ok(Changed::Boards(vec![BoardId(7)]))
        );
        assert_eq!(
            parse(r#"{"action":"contact_updated","boardId":"board_7"}"#),
            Ok(Changed::Boards(vec![BoardId(7)]))
        );
        assert_eq!(parse(r#"{"action":"workspace"}"#), Ok(Changed::Workspace));
        assert_eq!(parse(r#"{"action":"drop_tables"}"#), Err("invalid_action"));
        assert_eq!(
            parse(r#"{"action":"workspace","boardId":[1]}"#),
            Err("invalid_board_id")
        );
        assert_eq!(parse("not json"), Err("invalid_json"));
        assert!(parse(r#"{"action":"workspace","boardId":-1}"#).is_err());
    }

    #[test]
    fn a_push_survives_the_wire_and_bad_ids_are_refused() {
        let ws = WorkspaceId::parse("15213").expect("ws");
        for change in [
            Changed::Boards(vec![BoardId(4), BoardId(9)]),
            Changed::Conversation(ConversationId(3), Thread::Appended),
            Changed::Conversation(ConversationId(3), Thread::Edited),
            Changed::Edited(Edit {
                board: BoardId(4),
                contact: 17,
                views: vec![Filter::Favorites],
                orders: vec![SortBy::UpdatedAt, SortBy::Name],
                searched: true,
            }),
            Changed::Workspace,
        ] {
            let wire = serde_json::to_string(&Push::new(&ws, &change)).expect("json");
            assert_eq!(Push::parse(&wire), Ok((ws.clone(), change)));
        }
        for bad in [
            r#"{"workspaceId":"a b"}"#,
            r#"{"workspaceId":"15213","boards":[-1]}"#,
            r#"{"workspaceId":"15213","boards":[1],"extra":1}"#,
            r#"{"workspaceId":"15213","boards":[],"conversation":[0,"appended"]}"#,
            r#"{"workspaceId":"15213","boards":[],"conversation":[3,"typed"]}"#,
            r#"{"workspaceId":"15213","boards":[1,2],"edit":{"contact":3,"views":[],"orders":[],"searched":false}}"#,
            r#"{"workspaceId":"15213","boards":[1],"edit":{"contact":0,"views":[],"orders":[],"searched":false}}"#,
            r#"{"workspaceId":"15213","boards":[1],"edit":{"contact":3,"views":["x"],"orders":[],"searched":false}}"#,
            "[]",
        ] {
            assert!(Push::parse(bad).is_err(), "{bad}");
        }
    }
}
