//! Which endpoint a request is for. Paths are matched exactly: a trailing slash, an
//! extension (`/contacts.css`) or an encoded separator is not a route, so nothing of it
//! can be cached under a real route's key.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Metrics,
    Counts {
        workspace: String,
    },
    Contacts {
        board: String,
    },
    Messages {
        conversation: String,
    },
    MessageSearch {
        workspace: String,
    },
    Invalidate,
    /// The origin's pushed changes (`shared::invalidation::Push`), with the internal key.
    Changes,
    /// The origin found its outbox drained: every change it acknowledged so far is here.
    Drained,
    Preflight,
    MethodNotAllowed,
    NotFound,
}

impl Route {
    pub fn parse(method: &str, path: &str) -> Self {
        let parts: Vec<&str> = path.split('/').collect();
        let route = match parts.as_slice() {
            ["", "health"] => Self::Health,
            ["", "metrics"] => Self::Metrics,
            ["", "api", "workspaces", ws, "counts"] if !ws.is_empty() => Self::Counts {
                workspace: (*ws).to_owned(),
            },
            ["", "api", "boards", board, "contacts"] if !board.is_empty() => Self::Contacts {
                board: (*board).to_owned(),
            },
            ["", "api", "conversations", c, "messages"] if !c.is_empty() => Self::Messages {
                conversation: (*c).to_owned(),
            },
            ["", "api", "workspaces", ws, "messages", "search"] if !ws.is_empty() => {
                Self::MessageSearch {
                    workspace: (*ws).to_owned(),
                }
            }
            ["", "api", "cache", "invalidate"] => Self::Invalidate,
            ["", "internal", "changes"] => Self::Changes,
            ["", "internal", "changes", "drained"] => Self::Drained,
            _ => return Self::NotFound,
        };
        let allowed = match route {
            Self::Invalidate | Self::Changes | Self::Drained => method == "POST",
            _ => method == "GET",
        };
        match (allowed, method) {
            (true, _) => route,
            (false, "OPTIONS") => Self::Preflight,
            _ => Self::MethodNotAllowed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_paths_are_routed() {
        assert_eq!(Route::parse("GET", "/health"), Route::Health);
        assert_eq!(Route::parse("POST", "/internal/changes"), Route::Changes);
        assert_eq!(
            Route::parse("POST", "/internal/changes/drained"),
            Route::Drained
        );
        assert_eq!(
            Route::parse("GET", "/internal/changes"),
            Route::MethodNotAllowed
        );
        assert_eq!(
            Route::parse("GET", "/api/boards/12/contacts"),
            Route::Contacts { board: "12".into() }
        );
        assert_eq!(
            Route::parse("GET", "/api/workspaces/w1/messages/search"),
            Route::MessageSearch {
                workspace: "w1".into()
            }
        );
        assert_eq!(
            Route::parse("GET", "/api/workspaces/15213/counts"),
            Route::Counts {
                workspace: "15213".into()
            }
        );
        assert_eq!(
            Route::parse("POST", "/api/cache/invalidate"),
            Route::Invalidate
        );
        assert_eq!(
            Route::parse("GET", "/api/conversations/7/messages"),
            Route::Messages {
                conversation: "7".into()
            }
        );
        assert_eq!(
            Route::parse("OPTIONS", "/api/cache/invalidate"),
            Route::Preflight
        );
    }

    #[test]
    fn look_alike_paths_are_not_routes() {
        for path in [
            "/api/boards/12/contacts/",
            "/api/boards/12/contacts.css",
            "/api/boards/12/contacts;x.js",
            "/api/boards/12%2Fcontacts",
            "/api/boards//contacts",
            "/api/boards/12/../12/contacts",
            "/health/",
        ] {
            assert_eq!(Route::parse("GET", path), Route::NotFound, "{path}");
        }
        assert_eq!(Route::parse("DELETE", "/health"), Route::MethodNotAllowed);
    }
}
