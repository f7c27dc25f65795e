//! The edge worker; its logic arrives with the edge issue.
