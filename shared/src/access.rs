//! Which workspace a request acts in, decided the same way at the edge and at the origin.

use crate::{InputError, WorkspaceId};

/// Whether `url` is https, or plain http to this machine (where nothing is on the wire).
pub fn secure_or_local(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// The workspace of a request: the path's, which `X-Workspace-ID` must then repeat if it
/// is sent; for a path that names none (a board's list), the header's, which is required.
/// Two places naming a workspace must agree, so a token's grant is checked against the
/// one the request really reads.
pub fn request_workspace(
    path: Option<&str>,
    header: Option<&str>,
) -> Result<WorkspaceId, InputError> {
    match (path, header) {
        (Some(p), header) => {
            let ws = WorkspaceId::parse(p)?;
            if header.is_some_and(|h| h != p) {
                return Err(InputError::new(
                    "workspace_mismatch",
                    "X-Workspace-ID differs from the workspace in the path",
                ));
            }
            Ok(ws)
        }
        (None, Some(h)) => WorkspaceId::parse(h),
        (None, None) => Err(InputError::new(
            "missing_workspace",
            "X-Workspace-ID is required",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_wins_only_when_the_header_agrees_or_is_absent() {
        let code = |r: Result<WorkspaceId, InputError>| r.map_err(|e| e.code);
        assert_eq!(
            code(request_workspace(Some("a1"), None)).map(|w| w.as_str().to_owned()),
            Ok("a1".to_owned())
        );
        assert!(request_workspace(Some("a1"), Some("a1")).is_ok());
        assert_eq!(
            code(request_workspace(Some("a1"), Some("b2"))),
            Err("workspace_mismatch")
        );
        assert_eq!(
            code(request_workspace(None, Some("b2"))).map(|w| w.as_str().to_owned()),
            Ok("b2".to_owned())
        );
        assert_eq!(
            code(request_workspace(None, None)),
            Err("missing_workspace")
        );
        assert!(request_workspace(None, Some("not a workspace!")).is_err());
        assert_eq!(
            code(request_workspace(Some("a b"), Some("a1"))),
            Err("invalid_workspace_id")
        );
    }
}
