-- Conversations and their messages, as in Postgres. AUTOINCREMENT: a deleted newest
-- message's id is never given to the next one, so a cursor always names one message.
CREATE TABLE conversations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    contact_id      INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_message_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (workspace_id, id)
);

CREATE INDEX conversations_recent_idx ON conversations (workspace_id, last_message_at, id);
CREATE INDEX conversations_contact_idx ON conversations (contact_id, last_message_at, id);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id    TEXT NOT NULL,
    conversation_id INTEGER NOT NULL,
    sender_type     TEXT NOT NULL CHECK (sender_type IN ('contact', 'agent', 'bot')),
    sender_id       TEXT CHECK (length(sender_id) BETWEEN 1 AND 64),
    body            TEXT NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    edited_at       TEXT,
    FOREIGN KEY (workspace_id, conversation_id)
        REFERENCES conversations (workspace_id, id) ON DELETE CASCADE
);

CREATE INDEX messages_page_idx ON messages (conversation_id, id);
