-- As in Postgres: who edited a message, and tombstones (when, by whom, no body) instead of
-- removed rows. SQLite cannot relax NOT NULL in place, so the table is made again.
CREATE TABLE messages_next (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id    TEXT NOT NULL,
    conversation_id INTEGER NOT NULL,
    sender_type     TEXT NOT NULL CHECK (sender_type IN ('contact', 'agent', 'bot')),
    sender_id       TEXT CHECK (length(sender_id) BETWEEN 1 AND 64),
    body            TEXT CHECK (length(body) BETWEEN 1 AND 10000),
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    edited_at       TEXT,
    edited_by       TEXT CHECK (length(edited_by) BETWEEN 1 AND 64),
    deleted_at      TEXT,
    deleted_by      TEXT CHECK (length(deleted_by) BETWEEN 1 AND 64),
    CHECK ((deleted_at IS NULL) = (body IS NOT NULL)),
    FOREIGN KEY (workspace_id, conversation_id)
        REFERENCES conversations (workspace_id, id) ON DELETE CASCADE
);

INSERT INTO messages_next
    (id, workspace_id, conversation_id, sender_type, sender_id, body, created_at, edited_at)
SELECT id, workspace_id, conversation_id, sender_type, sender_id, body, created_at, edited_at
FROM messages;

DROP TABLE messages;
ALTER TABLE messages_next RENAME TO messages;
CREATE INDEX messages_page_idx ON messages (conversation_id, id);
