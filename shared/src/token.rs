//! Bearer tokens, verified the same way at the edge and at the origin: HS256 only,
//! `exp` and `sub` required, `nbf` honoured, 5 s leeway, oversized tokens refused unread.

mod hs256;

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::WorkspaceId;

/// Grants every workspace; only meaningful with the admin role (operators).
pub const ALL_WORKSPACES: &str = "*";
const MAX_TOKEN_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub workspaces: Vec<String>,
    /// The role in every workspace the token lists, unless `roles` names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A role per workspace, for a token that lists several (admin of one, member of
    /// another); a workspace it does not name has `role`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, String>,
    pub exp: u64,
}

impl Claims {
    pub fn is_admin(&self) -> bool {
        self.role.as_deref() == Some("admin")
    }

    /// The role the token gives in `ws`.
    pub fn role_in(&self, ws: &WorkspaceId) -> Option<&str> {
        self.roles
            .get(ws.as_str())
            .or(self.role.as_ref())
            .map(String::as_str)
    }

    /// An admin of `ws` (a workspace the token grants).
    pub fn is_admin_of(&self, ws: &WorkspaceId) -> bool {
        self.grants(ws) && self.role_in(ws) == Some("admin")
    }

    /// An integration in `ws` (a chat widget, a bot): it may post as the contact or as
    /// a bot.
    pub fn is_integration_in(&self, ws: &WorkspaceId) -> bool {
        self.grants(ws) && self.role_in(ws) == Some("integration")
    }

    /// Exact match only: a workspace id is never trimmed, split or case-folded here.
    pub fn grants(&self, ws: &WorkspaceId) -> bool {
        self.workspaces.iter().any(|w| w == ws.as_str())
            || (self.is_admin() && self.workspaces.iter().any(|w| w == ALL_WORKSPACES))
    }
}

/// Why a token was refused; callers answer every case with the same 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid token")]
pub struct InvalidToken;

pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    pub fn new(secret: &[u8]) -> Self {
        hs256::install();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_aud = false;
        Self {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Also requires the token's `aud` to be `audience` and its `iss` to be `issuer`
    /// where set (`JWT_AUDIENCE`, `JWT_ISSUER`): a token the identity provider made for
    /// another service, signed with the same key, is then refused.
    pub fn expecting(mut self, audience: Option<&str>, issuer: Option<&str>) -> Self {
        let mut required = vec!["exp", "sub"];
        match audience {
            Some(aud) => {
                self.validation.set_audience(&[aud]);
                self.validation.validate_aud = true;
                required.push("aud");
            }
            None => self.validation.validate_aud = false,
        }
        if let Some(iss) = issuer {
            self.validation.set_issuer(&[iss]);
            required.push("iss");
        }
        self.validation.set_required_spec_claims(&required);
        self
    }

    pub fn verify(&self, token: &str) -> Result<Claims, InvalidToken> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(InvalidToken);
        }
        decode::<Claims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| InvalidToken)
    }
}

/// Whether a presented shared secret (the edge's internal key, at the origin and at the
/// worker) is the expected one: their SHA-256 digests, of one length whatever the inputs,
/// are compared in constant time, so neither the secret's length nor its prefix leaks
/// through timing.
pub fn same_secret(expected: &str, presented: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let digest = |secret: &str| -> [u8; 32] { Sha256::digest(secret.as_bytes()).into() };
    digest(expected).ct_eq(&digest(presented)).into()
}

/// Whether `presented` is one of `expected` (a key and, during a rotation, the one before
/// it): every one is compared, so the time taken does not tell which matched.
pub fn any_secret<'a>(expected: impl IntoIterator<Item = &'a str>, presented: &str) -> bool {
    expected
        .into_iter()
        .fold(false, |found, key| same_secret(key, presented) | found)
}

/// Signs a token (the origin's `token` command, its demo token, and tests, which also sign
/// claims of their own making).
pub fn issue(secret: &[u8], claims: &impl Serialize) -> Result<String, InvalidToken> {
    hs256::install();
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|_| InvalidToken)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "u1".into(),
            workspaces: vec!["15213".into()],
            role: None,
            roles: Default::default(),
            exp,
        }
    }

    #[test]
    fn a_signed_token_round_trips_and_a_tampered_one_does_not() {
        let token = issue(SECRET, &claims(4_000_000_000)).expect("signed");
        let v = TokenVerifier::new(SECRET);
        assert_eq!(v.verify(&token), Ok(claims(4_000_000_000)));
        let mut tampered = token.clone();
        tampered.pop();
        assert_eq!(v.verify(&tampered), Err(InvalidToken));
        assert_eq!(
            v.verify(&issue(SECRET, &claims(1)).expect("signed")),
            Err(InvalidToken)
        );
    }

    #[test]
    fn alg_none_and_oversized_tokens_are_refused() {
        let v = TokenVerifier::new(SECRET);
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSIsIndvcmtzcGFjZXMiOlsiMTUyMTMiXSwiZXhwIjo0MDAwMDAwMDAwfQ.";
        assert_eq!(v.verify(none), Err(InvalidToken));
        assert_eq!(v.verify(&"a".repeat(16 * 1024)), Err(InvalidToken));
    }

    #[test]
    fn a_wildcard_grants_every_workspace_only_to_admins() {
        let ws = WorkspaceId::parse("999").expect("ws");
        let mut c = claims(0);
        c.workspaces = vec![ALL_WORKSPACES.into()];
        assert!(!c.grants(&ws));
        c.role = Some("admin".into());
        assert!(c.grants(&ws));
    }

    #[test]
    fn audience_and_issuer_are_required_only_where_set() {
        #[derive(Serialize)]
        struct With<'a> {
            #[serde(flatten)]
            claims: Claims,
            #[serde(skip_serializing_if = "Option::is_none")]
            aud: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            iss: Option<&'a str>,
        }
        let token = |aud, iss| {
            let with = With {
                claims: claims(4_000_000_000),
                aud,
                iss,
            };
            issue(SECRET, &with).expect("signed")
        };
        let any = TokenVerifier::new(SECRET);
        assert!(any.verify(&token(Some("crm"), Some("idp"))).is_ok());
        assert!(any.verify(&token(None, None)).is_ok());
        let strict = TokenVerifier::new(SECRET).expecting(Some("crm"), Some("idp"));
        assert!(strict.verify(&token(Some("crm"), Some("idp"))).is_ok());
        for (aud, iss) in [
            (None, None),
            (Some("crm"), None),
            (None, Some("idp")),
            (Some("billing"), Some("idp")),
            (Some("crm"), Some("other")),
        ] {
            assert_eq!(
                strict.verify(&token(aud, iss)),
                Err(InvalidToken),
                "{aud:?} {iss:?}"
            );
        }
    }
}
