//! The announcements origin instances exchange on the namespace's channel (sent and
//! applied by `crate::invalidation`).

use shared::WorkspaceId;

/// A change announced on the channel.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A workspace's generations changed; with an id, the announcer waits for acks.
    Generation(WorkspaceId, Option<u64>),
    Settings(WorkspaceId),
    /// An instance has applied the announcement of this id.
    Ack(u64),
}

impl Event {
    pub fn encode(&self) -> String {
        match self {
            Self::Generation(ws, None) => format!("gen:{ws}"),
            Self::Generation(ws, Some(id)) => format!("gen:{ws}:{id}"),
            Self::Settings(ws) => format!("settings:{ws}"),
            Self::Ack(id) => format!("ack:{id}"),
        }
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let (kind, rest) = raw.split_once(':')?;
        let ws = |w: &str| WorkspaceId::parse(w).ok();
        match kind {
            "gen" => Some(match rest.split_once(':') {
                Some((w, id)) => Self::Generation(ws(w)?, Some(id.parse().ok()?)),
                None => Self::Generation(ws(rest)?, None),
            }),
            "settings" => Some(Self::Settings(ws(rest)?)),
            "ack" => rest.parse().ok().map(Self::Ack),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_encoding_and_garbage_is_ignored() {
        let ws = WorkspaceId::parse("15213").expect("valid");
        for e in [
            Event::Generation(ws.clone(), None),
            Event::Generation(ws.clone(), Some(u64::MAX)),
            Event::Settings(ws),
            Event::Ack(7),
        ] {
            assert_eq!(Event::decode(&e.encode()), Some(e));
        }
        for raw in [
            "", "gen", "gen:", "gen:a b", "gen:1:x", "ack:", "ack:-1", "other:1",
        ] {
            assert_eq!(Event::decode(raw), None, "{raw:?}");
        }
    }
}
