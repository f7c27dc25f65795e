-- The embedded store's schema: the Postgres schema's tables and rules in SQLite's terms.
-- Timestamps are ISO 8601 text in UTC with milliseconds, which sort as they compare;
-- booleans are 0/1; custom attributes are JSON text.

CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64 AND id NOT GLOB '*[^A-Za-z0-9_-]*'),
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE boards (
    id           INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    UNIQUE (workspace_id, id)
);

CREATE TABLE board_columns (
    id       INTEGER PRIMARY KEY,
    board_id INTEGER NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    position INTEGER NOT NULL,
    UNIQUE (board_id, id)
);

-- As in Postgres, the composite foreign keys keep a contact's board in its workspace and
-- its column on its board.
CREATE TABLE contacts (
    id                INTEGER PRIMARY KEY,
    workspace_id      TEXT NOT NULL,
    board_id          INTEGER NOT NULL,
    column_id         INTEGER NOT NULL,
    name              TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email             TEXT,
    phone             TEXT,
    company           TEXT,
    status            TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    priority          TEXT NOT NULL DEFAULT 'medium' CHECK (priority IN ('high', 'medium', 'low')),
    assigned_to       TEXT,
    needs_response    INTEGER NOT NULL DEFAULT 0 CHECK (needs_response IN (0, 1)),
    follow_up         INTEGER NOT NULL DEFAULT 0 CHECK (follow_up IN (0, 1)),
    favorite          INTEGER NOT NULL DEFAULT 0 CHECK (favorite IN (0, 1)),
    archived          INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    sentiment         TEXT NOT NULL DEFAULT 'neutral' CHECK (sentiment IN ('positive', 'neutral', 'negative')),
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_activity_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    custom_attributes TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(custom_attributes)),
    FOREIGN KEY (workspace_id, board_id) REFERENCES boards (workspace_id, id) ON DELETE CASCADE,
    FOREIGN KEY (board_id, column_id) REFERENCES board_columns (board_id, id)
);

-- Counts read one covering index of the workspace's entries.
CREATE INDEX contacts_counts_idx ON contacts (workspace_id, archived, status, priority,
    assigned_to, needs_response, follow_up, favorite, sentiment, created_at, last_activity_at);

-- List pages walk an index in the requested order and stop after one page.
CREATE INDEX contacts_board_created_idx ON contacts (workspace_id, board_id, created_at, id);
CREATE INDEX contacts_board_updated_idx ON contacts (workspace_id, board_id, updated_at, id);
CREATE INDEX contacts_board_activity_idx ON contacts (workspace_id, board_id, last_activity_at, id);
CREATE INDEX contacts_board_name_idx ON contacts (workspace_id, board_id, name, id);
CREATE INDEX contacts_board_column_created_idx ON contacts (workspace_id, board_id, column_id, created_at, id);

CREATE TABLE workspace_cache_settings (
    workspace_id TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    settings     TEXT NOT NULL CHECK (json_valid(settings)),
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
