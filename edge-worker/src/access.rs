//! Who may read what at the edge: the token is verified before anything else (a KV hit
//! never skips this), then the workspace it must grant (`shared::access`).

use shared::access::request_workspace;
use shared::token::TokenVerifier;
use shared::{UserId, WorkspaceId};

use crate::fail::{Fail, Result};

/// The headers a request authenticates with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    pub authorization: Option<&'a str>,
    pub user: Option<&'a str>,
    pub workspace: Option<&'a str>,
}

/// The reader and the workspace of a request whose path names `path_ws` (or none).
pub fn authorize(
    tokens: &TokenVerifier,
    presented: Presented<'_>,
    path_ws: Option<&str>,
) -> Result<(UserId, WorkspaceId)> {
    let token = presented
        .authorization
        .and_then(|a| a.strip_prefix("Bearer "))
        .ok_or_else(Fail::unauthorized)?;
    let claims = tokens
        .verify(token.trim())
        .map_err(|_| Fail::unauthorized())?;
    let user = UserId::parse(&claims.sub).map_err(|_| Fail::unauthorized())?;
    if presented.user.is_some_and(|u| u != user.as_str()) {
        return Err(Fail::new(
            403,
            "forbidden",
            "X-User-ID differs from the token's user",
        ));
    }
    let ws = request_workspace(path_ws, presented.workspace)?;
    if !claims.grants(&ws) {
        return Err(Fail::new(
            403,
            "forbidden",
            "the token does not grant this workspace",
        ));
    }
    Ok((user, ws))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::token::{issue, Claims};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn bearer(workspaces: &[&str], exp_offset: i64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let claims = Claims {
            sub: "u1".into(),
            workspaces: workspaces.iter().map(|w| (*w).to_owned()).collect(),
            role: None,
            roles: Default::default(),
            exp: u64::try_from(now + exp_offset).unwrap_or(0),
        };
        format!("Bearer {}", issue(SECRET, &claims).expect("signed"))
    }

    fn status(
        r: Result<(UserId, WorkspaceId)>,
    ) -> std::result::Result<String, (u16, &'static str)> {
        r.map(|(_, ws)| ws.as_str().to_owned())
            .map_err(|f| (f.status, f.code))
    }

    #[test]
    fn a_token_reads_only_the_workspaces_it_grants() {
        let tokens = TokenVerifier::new(SECRET);
        let auth = bearer(&["a1"], 60);
        let with = |user, workspace, path| {
            status(authorize(
                &tokens,
                Presented {
                    authorization: Some(&auth),
                    user,
                    workspace,
                },
                path,
            ))
        };
        assert_eq!(with(None, Some("a1"), None), Ok("a1".into()));
        assert_eq!(with(None, None, Some("a1")), Ok("a1".into()));
        assert_eq!(with(None, Some("b2"), None), Err((403, "forbidden")));
        assert_eq!(
            with(None, Some("b2"), Some("a1")),
            Err((400, "workspace_mismatch"))
        );
        assert_eq!(with(None, None, None), Err((400, "missing_workspace")));
        assert_eq!(with(Some("u2"), Some("a1"), None), Err((403, "forbidden")));
        assert_eq!(with(Some("u1"), Some("a1"), None), Ok("a1".into()));
    }

    #[test]
    fn missing_expired_and_forged_tokens_are_one_401() {
        let tokens = TokenVerifier::new(SECRET);
        let expired = bearer(&["a1"], -120);
        for authorization in [
            None,
            Some("a1"),
            Some("Bearer x.y.z"),
            Some(expired.as_str()),
        ] {
            let r = authorize(
                &tokens,
                Presented {
                    authorization,
                    user: None,
                    workspace: Some("a1"),
                },
                None,
            );
            assert_eq!(status(r), Err((401, "unauthorized")), "{authorization:?}");
        }
    }
}
