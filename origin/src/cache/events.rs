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
    /// Live changes of a workspace (`crate::live`) announced by an instance, numbered
    /// from the first; the JSON array of their `data`.
    Live {
        ws: WorkspaceId,
        instance: u64,
        first: u64,
        data: String,
    },
}

impl Event {
    pub fn encode(&self) -> String {
        match self {
            Self::Generation(ws, None) => format!("gen:{ws}"),
            Self::Generation(ws, Some(id)) => format!("gen:{ws}:{id}"),
            Self::Settings(ws) => format!("settings:{ws}"),
            Self::Ack(id) => format!("ack:{id}"),
            Self::Live {
                ws,
                instance,
                first,
                data,
            } => format!("live:{ws}:{instance}:{first}:{data}"),
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
            "live" => {
                let mut parts = rest.splitn(4, ':');
                let (w, instance, first, data) =
                    (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
                Some(Self::Live {
                    ws: ws(w)?,
                    instance: instance.parse().ok()?,
                    first: first.parse().ok()?,
                    data: data.to_owned(),
                })
            }
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
            Event::Settings(ws.clone()),
            Event::Ack(7),
            Event::Live {
                ws,
                instance: 3,
                first: 12,
                data: r#"[{"scope":"counts","id":null,"at":1}]"#.into(),
            },
        ] {
            assert_eq!(Event::decode(&e.encode()), Some(e));
        }
        for raw in [
            "",
            "gen",
            "gen:",
            "gen:a b",
            "gen:1:x",
            "ack:",
            "ack:-1",
            "other:1",
            "live:1",
            "live:1:2:x:[]",
            "live:1:x:2:[]",
        ] {
            assert_eq!(Event::decode(raw), None, "{raw:?}");
        }
    }
}
