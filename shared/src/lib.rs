//! What the edge worker and the origin must agree on: identifiers, list queries,
//! cache settings, cache keys and the JSON shapes of API.md. No I/O lives here so
//! that the same code builds for wasm32 and native and is tested natively.

pub mod access;
pub mod cursor;
pub mod error;
pub mod ids;
pub mod invalidation;
pub mod keys;
pub mod message_search;
pub mod messages;
pub mod model;
pub mod query;
pub mod search;
pub mod settings;
pub mod splice;
pub mod stats;
pub mod token;

pub use error::InputError;
pub use ids::{BoardId, ContactId, ConversationId, MessageId, UserId, WorkspaceId};
