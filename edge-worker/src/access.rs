//! Who may read what at the edge: the token is verified before anything else (a KV hit
//! never skips this), then the workspace it must grant (`shared::access`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use shared::access::request_workspace;
use shared::token::{Claims, TokenVerifier};
use shared::{UserId, WorkspaceId};

use crate::fail::{Fail, Result};

/// How long a verified token is trusted without verifying it again (never past its
/// `exp`), and how many one isolate remembers.
const VERIFIED_FOR_SECS: u64 = 60;
const VERIFIED_MAX: usize = 10_000;
/// Longer tokens are verified every time: the remembered ones stay within ~20 MB.
const REMEMBERED_TOKEN_BYTES: usize = 2_048;

/// Verified tokens: their claims, and until when (s) they are trusted.
type Remembered = HashMap<Box<str>, (Rc<Claims>, u64)>;

thread_local! {
    /// Tokens this isolate verified: a browser sends the same one with every request, and
    /// verifying it (base64, HMAC-SHA256, JSON) is most of a KV hit's own work.
    static VERIFIED: RefCell<Remembered> = RefCell::new(HashMap::new());
}

/// `token`'s claims: this isolate's verdict while it stands, else `tokens`' (only a valid
/// token is remembered, and only until `VERIFIED_FOR_SECS` from now or its expiry).
fn verified(tokens: &TokenVerifier, token: &str, now_secs: u64) -> Option<Rc<Claims>> {
    let known = VERIFIED.with(|v| {
        v.borrow()
            .get(token)
            .filter(|(_, until)| now_secs < *until)
            .map(|(claims, _)| claims.clone())
    });
    if known.is_some() {
        return known;
    }
    let claims = Rc::new(tokens.verify(token).ok()?);
    if token.len() > REMEMBERED_TOKEN_BYTES {
        return Some(claims);
    }
    let until = claims.exp.min(now_secs + VERIFIED_FOR_SECS);
    VERIFIED.with(|v| {
        let mut v = v.borrow_mut();
        if v.len() >= VERIFIED_MAX {
            v.clear();
        }
        v.insert(token.into(), (claims.clone(), until));
    });
    Some(claims)
}

/// The headers a request authenticates with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    pub authorization: Option<&'a str>,
    pub user: Option<&'a str>,
    pub workspace: Option<&'a str>,
}

/// The reader and the workspace of a request whose path names `path_ws` (or none), at
/// `now_secs`.
pub fn authorize(
    tokens: &TokenVerifier,
    presented: Presented<'_>,
    path_ws: Option<&str>,
    now_secs: u64,
) -> Result<(UserId, WorkspaceId)> {
    let token = presented
        .authorization
        .and_then(|a| a.strip_prefix("Bearer "))
        .ok_or_else(Fail::unauthorized)?;
    let claims = verified(tokens, token.trim(), now_secs).ok_or_else(Fail::unauthorized)?;
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

    fn now_secs() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn bearer(workspaces: &[&str], exp_offset: i64) -> String {
        let now = now_secs() as i64;
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
                now_secs(),
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
    fn a_remembered_token_is_trusted_only_until_its_expiry() {
        let tokens = TokenVerifier::new(SECRET);
        let auth = bearer(&["a1"], 30);
        let token = auth.trim_start_matches("Bearer ");
        let now = now_secs();
        let claims = verified(&tokens, token, now).expect("valid");
        // Another key no longer verifies it, but the isolate's verdict stands…
        let other = TokenVerifier::new(b"another key, another key, another");
        assert_eq!(verified(&other, token, now + 10), Some(claims.clone()));
        // …until its expiry, however recently it was verified.
        assert_eq!(verified(&other, token, claims.exp), None);
        assert_eq!(
            verified(&other, "x.y.z", now),
            None,
            "a forged token is never kept"
        );
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
                now_secs(),
            );
            assert_eq!(status(r), Err((401, "unauthorized")), "{authorization:?}");
        }
    }
}
