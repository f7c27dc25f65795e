//! Authentication (applied by `http::auth`'s middleware): a bearer JWT (HS256, `exp` required) naming the
//! workspaces it grants and an optional admin role, or the edge worker's internal key.
//! Every failure answers the same 401 body. Handlers then ask the `Caller` for what
//! they need (a workspace, the admin role), so authorization is one call per handler.

use std::cell::RefCell;
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header::{AsHeaderName, AUTHORIZATION};
use axum::http::{HeaderMap, HeaderName};
use shared::token::{any_secret, TokenVerifier};
use shared::{UserId, WorkspaceId};

use crate::cache::entry::now_ms;
use crate::error::{Error, Result};
use crate::FastHash;

// Header names as `HeaderName`s: a lookup by `&str` parses and checks the name each time.
pub const INTERNAL_KEY_HEADER: HeaderName = HeaderName::from_static("x-internal-key");
pub const WORKSPACE_HEADER: HeaderName = HeaderName::from_static("x-workspace-id");
pub const USER_HEADER: HeaderName = HeaderName::from_static("x-user-id");
pub use shared::token::{issue, Claims};

/// How long a verified token is remembered, and how many are.
const VERIFIED_FOR: Duration = Duration::from_secs(60);
const VERIFIED_MAX: u64 = 10_000;

/// A person with a verified token.
#[derive(Debug)]
pub struct Person {
    pub user: UserId,
    pub claims: Claims,
}

/// Who is calling, as established by the middleware.
#[derive(Debug, Clone)]
pub enum Caller {
    User(Arc<Person>),
    /// The edge worker, which verified the user's token itself and forwards the user.
    Edge {
        user: Option<UserId>,
    },
}

impl Caller {
    /// Fails unless the caller may act in `ws`.
    pub fn workspace(&self, ws: &WorkspaceId) -> Result<()> {
        match self {
            Self::Edge { .. } => Ok(()),
            Self::User(p) => p
                .claims
                .grants(ws)
                .then_some(())
                .ok_or(Error::Forbidden("the token does not grant this workspace")),
        }
    }

    /// Fails for the edge's key. The key opens only what the edge calls (list pages,
    /// counts and board invalidations, for the user the edge verified); writes and
    /// settings need a person's token, so a leaked key cannot change any workspace.
    pub fn person(&self) -> Result<()> {
        match self {
            Self::User(_) => Ok(()),
            Self::Edge { .. } => Err(Error::Forbidden(
                "the edge's key may only read and invalidate a board",
            )),
        }
    }

    /// Fails unless the caller is an admin of `ws` (or an operator), by the token's role
    /// in that workspace.
    pub fn admin_of(&self, ws: &WorkspaceId) -> Result<()> {
        self.workspace(ws)?;
        match self {
            Self::User(p) if p.claims.is_admin_of(ws) => Ok(()),
            _ => Err(Error::Forbidden("this needs the admin role")),
        }
    }

    /// Whether the token is an integration's in `ws` (`role: integration`).
    pub fn integration_in(&self, ws: &WorkspaceId) -> bool {
        matches!(self, Self::User(p) if p.claims.is_integration_in(ws))
    }

    /// When (seconds since the epoch) the caller's token expires; `None` for the edge.
    pub fn expires(&self) -> Option<u64> {
        match self {
            Self::User(p) => Some(p.claims.exp),
            Self::Edge { .. } => None,
        }
    }

    pub fn admin(&self) -> Result<()> {
        match self {
            Self::User(p) if p.claims.is_admin() => Ok(()),
            _ => Err(Error::Forbidden("this needs the admin role")),
        }
    }

    /// An admin whose token grants every workspace: sees the system-wide view.
    pub fn is_operator(&self) -> bool {
        match self {
            Self::User(p) => {
                p.claims.is_admin()
                    && p.claims
                        .workspaces
                        .iter()
                        .any(|w| w == shared::token::ALL_WORKSPACES)
            }
            Self::Edge { .. } => false,
        }
    }

    /// The user the request acts for (`assignedToMe`).
    pub fn user(&self) -> Result<&UserId> {
        match self {
            Self::User(p) => Ok(&p.user),
            Self::Edge { user: Some(user) } => Ok(user),
            Self::Edge { user: None } => {
                Err(Error::bad_request("missing_user", "X-User-ID is required"))
            }
        }
    }
}

/// The token last verified on one connection: a keep-alive connection sends the same
/// token with every request, and comparing it with the last one costs less than looking
/// it up. Kept no longer than `verified` keeps it, and never past its `exp`.
#[derive(Default)]
pub struct LastToken(RefCell<Option<Remembered>>);

struct Remembered {
    token: Box<str>,
    person: Arc<Person>,
    /// Seconds since the epoch.
    until: u64,
}

impl LastToken {
    fn get(&self, token: &str, now: u64) -> Option<Arc<Person>> {
        let last = self.0.borrow();
        let last = last.as_ref()?;
        (*last.token == *token && now < last.until).then(|| last.person.clone())
    }

    fn set(&self, token: &str, person: &Arc<Person>, now: u64) {
        *self.0.borrow_mut() = Some(Remembered {
            token: token.into(),
            person: person.clone(),
            until: person.claims.exp.min(now + VERIFIED_FOR.as_secs()),
        });
    }
}

pub struct Verifier {
    tokens: TokenVerifier,
    /// The edge's read keys (the current one, and the previous during a rotation).
    internal_keys: Vec<String>,
    /// Tokens verified in the last minute, so that a request with one pays neither the
    /// HMAC nor the parsing of its claims again. Keyed by the whole token, so only a token
    /// that was verified ever matches; never used past the token's `exp`.
    verified: moka::sync::Cache<Box<str>, Arc<Person>, FastHash>,
}

impl Verifier {
    pub fn new(jwt_secret: &[u8], internal_key: Option<&str>) -> Self {
        Self::with_tokens(
            TokenVerifier::new(jwt_secret),
            internal_key.into_iter().collect(),
        )
    }

    pub fn with_tokens(tokens: TokenVerifier, internal_keys: Vec<&str>) -> Self {
        Self {
            tokens,
            internal_keys: internal_keys.into_iter().map(str::to_owned).collect(),
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_MAX)
                .time_to_live(VERIFIED_FOR)
                .build_with_hasher(FastHash::default()),
        }
    }

    /// The person `token` names at `now` (seconds since the epoch).
    fn person(&self, token: &str, last: Option<&LastToken>, now: u64) -> Result<Arc<Person>> {
        if let Some(person) = last.and_then(|l| l.get(token, now)) {
            return Ok(person);
        }
        let person = match self.verified.get(token).filter(|p| p.claims.exp > now) {
            Some(person) => person,
            None => {
                let claims = self.tokens.verify(token).map_err(|_| Error::Unauthorized)?;
                let user = UserId::parse(&claims.sub).map_err(|_| Error::Unauthorized)?;
                let person = Arc::new(Person { user, claims });
                self.verified.insert(token.into(), person.clone());
                person
            }
        };
        if let Some(last) = last {
            last.set(token, &person, now);
        }
        Ok(person)
    }

    fn is_internal_key(&self, presented: &str) -> bool {
        any_secret(self.internal_keys.iter().map(String::as_str), presented)
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller> {
        self.authenticate_with(&Credentials::of(headers)?, None, now_ms())
    }

    /// The caller `credentials` name at `at_ms` (since the epoch), remembering the bearer
    /// token on `last` (a connection's).
    pub fn authenticate_with(
        &self,
        credentials: &Credentials<'_>,
        last: Option<&LastToken>,
        at_ms: i64,
    ) -> Result<Caller> {
        if let Some(key) = credentials.internal_key {
            if !self.is_internal_key(key) {
                return Err(Error::Unauthorized);
            }
            let user = credentials.user.map(UserId::parse).transpose()?;
            return Ok(Caller::Edge { user });
        }
        let auth = credentials.authorization.ok_or(Error::Unauthorized)?;
        let token = auth.strip_prefix("Bearer ").ok_or(Error::Unauthorized)?;
        let now = u64::try_from(at_ms / 1000).unwrap_or(0);
        let person = self.person(token.trim(), last, now)?;
        if let Some(claimed) = credentials.user {
            if claimed != person.user.as_str() {
                return Err(Error::Forbidden("X-User-ID differs from the token's user"));
            }
        }
        Ok(Caller::User(person))
    }
}

/// The headers authentication reads, each given at most once and visible ASCII. The
/// hit path finds them in its one pass over the headers; everything else asks `of`.
#[derive(Default)]
pub struct Credentials<'a> {
    pub internal_key: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub user: Option<&'a str>,
}

impl<'a> Credentials<'a> {
    pub fn of(headers: &'a HeaderMap) -> Result<Self> {
        Ok(Self {
            internal_key: single_header(headers, &INTERNAL_KEY_HEADER)?,
            authorization: single_header(headers, &AUTHORIZATION)?,
            user: single_header(headers, &USER_HEADER)?,
        })
    }
}

/// A header that may appear at most once and must be visible ASCII.
pub fn single_header<N>(headers: &HeaderMap, name: N) -> Result<Option<&str>>
where
    N: AsHeaderName + Display + Copy,
{
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Error::bad_request(
            "duplicate_header",
            format!("{name} is given more than once"),
        ));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| Error::bad_request("invalid_header", format!("{name} is not visible ASCII")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(exp_offset: i64) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            sub: "u1".into(),
            workspaces: vec!["15213".into()],
            role: None,
            roles: Default::default(),
            exp: u64::try_from(now + exp_offset).unwrap_or(0),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("header value"));
        }
        h
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    #[test]
    fn a_remembered_token_is_used_only_as_itself_and_only_until_it_expires() {
        let v = Verifier::new(SECRET, None);
        let token = issue(SECRET, &claims(3600)).expect("token");
        let auth = bearer(&token);
        for _ in 0..2 {
            let caller = v
                .authenticate(&headers(&[("authorization", &auth)]))
                .expect("valid");
            assert_eq!(caller.user().expect("user").as_str(), "u1");
        }
        assert!(v.verified.contains_key(token.as_str()));
        let other = bearer(&format!("{token}x"));
        assert!(v
            .authenticate(&headers(&[("authorization", &other)]))
            .is_err());
        let expired = Arc::new(Person {
            user: UserId::parse("u1").expect("user"),
            claims: claims(-10),
        });
        v.verified.insert("remembered".into(), expired);
        let remembered = bearer("remembered");
        assert!(
            v.authenticate(&headers(&[("authorization", &remembered)]))
                .is_err(),
            "an expired token is never taken from memory"
        );
    }

    #[test]
    fn a_valid_token_grants_only_its_workspaces() {
        let v = Verifier::new(SECRET, None);
        let token = issue(SECRET, &claims(60)).expect("signed");
        let caller = v
            .authenticate(&headers(&[("authorization", &bearer(&token))]))
            .expect("valid");
        assert!(caller
            .workspace(&WorkspaceId::parse("15213").expect("ws"))
            .is_ok());
        assert!(caller
            .workspace(&WorkspaceId::parse("15214").expect("ws"))
            .is_err());
        assert!(caller.admin().is_err());
    }

    #[test]
    fn a_connection_remembers_its_last_token_only_for_that_token_and_not_past_exp() {
        let v = Verifier::new(SECRET, None);
        let last = LastToken::default();
        let mine = issue(SECRET, &claims(30)).expect("signed");
        let mut theirs = claims(3600);
        theirs.sub = "u2".into();
        let theirs = issue(SECRET, &theirs).expect("signed");
        let user = |token: &str| {
            let auth = bearer(token);
            let credentials = Credentials {
                authorization: Some(&auth),
                ..Credentials::default()
            };
            let caller = v.authenticate_with(&credentials, Some(&last), now_ms());
            caller.map(|c| c.user().expect("a person").as_str().to_owned())
        };
        assert_eq!(user(&mine).ok().as_deref(), Some("u1"));
        assert_eq!(user(&mine).ok().as_deref(), Some("u1"));
        assert_eq!(
            user(&theirs).ok().as_deref(),
            Some("u2"),
            "another token on the connection"
        );
        assert!(matches!(user("forged.token.x"), Err(Error::Unauthorized)));
        let now = u64::try_from(now_ms() / 1000).expect("after 1970");
        assert!(last.get(&theirs, now).is_some());
        assert!(
            last.get(&mine, now).is_none(),
            "only the last token is held"
        );
        assert!(
            last.get(&theirs, now + VERIFIED_FOR.as_secs()).is_none(),
            "kept a minute at most"
        );
        let person = v.person(&mine, Some(&last), now).expect("valid");
        assert!(
            last.get(&mine, person.claims.exp).is_none(),
            "never at or past exp"
        );
    }

    #[test]
    fn expired_forged_and_malformed_tokens_are_rejected_alike() {
        let v = Verifier::new(SECRET, None);
        let expired = issue(SECRET, &claims(-120)).expect("signed");
        let forged = issue(b"another-secret-another-secret-xx", &claims(60)).expect("signed");
        for token in [
            expired.as_str(),
            forged.as_str(),
            "not.a.token",
            "",
            &"a".repeat(16 * 1024),
        ] {
            let result = v.authenticate(&headers(&[("authorization", &bearer(token))]));
            assert!(matches!(result, Err(Error::Unauthorized)), "{token:.20}");
        }
    }

    #[test]
    fn the_internal_key_must_match_exactly() {
        let v = Verifier::new(SECRET, Some("edge-internal-key-1"));
        let ok = v.authenticate(&headers(&[
            ("x-internal-key", "edge-internal-key-1"),
            ("x-user-id", "u1"),
        ]));
        assert!(matches!(ok, Ok(Caller::Edge { user: Some(_) })));
        for bad in ["edge-internal-key-", "edge-internal-key-12", ""] {
            let r = v.authenticate(&headers(&[("x-internal-key", bad)]));
            assert!(matches!(r, Err(Error::Unauthorized)), "{bad:?}");
        }
        let none = Verifier::new(SECRET, None);
        assert!(none
            .authenticate(&headers(&[("x-internal-key", "edge-internal-key-1")]))
            .is_err());
    }
}
