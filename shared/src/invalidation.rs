//! What a change makes stale, decided once for every path that learns of one: the origin's
//! writes, the store's change notices, an admin's invalidation and the edge's.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::keys::{board_patterns, workspace_patterns, GenerationScope};
use crate::{BoardId, InputError, WorkspaceId};

/// A change as the caches see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// Contacts on these boards were created, edited, moved or deleted.
    Boards(Vec<BoardId>),
    /// Anything in the workspace may have changed.
    Workspace,
}

impl Changed {
    /// The generations to bump. A contact write changes its boards' pages and may change
    /// any count, so each board goes with the counts; the workspace generation is part of
    /// every key of the workspace.
    pub fn scopes(&self) -> Vec<GenerationScope> {
        match self {
            Self::Boards(boards) => boards
                .iter()
                .map(|b| GenerationScope::Board(*b))
                .chain([GenerationScope::Counts])
                .collect(),
            Self::Workspace => vec![GenerationScope::Workspace],
        }
    }

    /// The key patterns API.md reports for the change.
    pub fn patterns(&self, ws: &WorkspaceId) -> Vec<String> {
        match self {
            Self::Boards(boards) => {
                let mut patterns: Vec<String> =
                    boards.iter().flat_map(|b| board_patterns(ws, *b)).collect();
                patterns.dedup();
                patterns
            }
            Self::Workspace => workspace_patterns(ws),
        }
    }

    /// Whether a workspace member may ask for it; a workspace-wide one needs an admin.
    pub fn needs_admin(&self) -> bool {
        matches!(self, Self::Workspace)
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
/// key): the workspace, and its boards, or none for the whole workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Push {
    pub workspace_id: String,
    pub boards: Option<Vec<i64>>,
}

impl Push {
    pub fn new(ws: &WorkspaceId, change: &Changed) -> Self {
        Self {
            workspace_id: ws.as_str().to_owned(),
            boards: match change {
                Changed::Boards(boards) => Some(boards.iter().map(|b| b.0).collect()),
                Changed::Workspace => None,
            },
        }
    }

    /// The pushed change, every id checked.
    pub fn parse(body: &str) -> Result<(WorkspaceId, Changed), InputError> {
        let push: Self = serde_json::from_str(body)
            .map_err(|e| InputError::new("invalid_json", e.to_string()))?;
        let ws = WorkspaceId::parse(&push.workspace_id)?;
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
                GenerationScope::Counts
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
            Changed::Workspace,
        ] {
            let wire = serde_json::to_string(&Push::new(&ws, &change)).expect("json");
            assert_eq!(Push::parse(&wire), Ok((ws.clone(), change)));
        }
        for bad in [
            r#"{"workspaceId":"a b"}"#,
            r#"{"workspaceId":"15213","boards":[-1]}"#,
            r#"{"workspaceId":"15213","boards":[1],"extra":1}"#,
            "[]",
        ] {
            assert!(Push::parse(bad).is_err(), "{bad}");
        }
    }
}
