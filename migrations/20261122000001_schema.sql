-- Workspaces, boards, columns and contacts (API.md data model), sized for 200k contacts in
-- one workspace and 10M overall.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE workspaces (
    id         text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE boards (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL,
    UNIQUE (workspace_id, id)
);

CREATE TABLE board_columns (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    board_id bigint NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    name     text NOT NULL,
    position integer NOT NULL,
    UNIQUE (board_id, id)
);

-- The composite foreign keys make a contact's board belong to its workspace and its
-- column to its board, so no write can ever cross a tenant.
CREATE TABLE contacts (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id      text NOT NULL,
    board_id          bigint NOT NULL,
    column_id         bigint NOT NULL,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email             text,
    phone             text,
    company           text,
    status            text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    priority          text NOT NULL DEFAULT 'medium' CHECK (priority IN ('high', 'medium', 'low')),
    assigned_to       text,
    needs_response    boolean NOT NULL DEFAULT false,
    follow_up         boolean NOT NULL DEFAULT false,
    favorite          boolean NOT NULL DEFAULT false,
    archived          boolean NOT NULL DEFAULT false,
    sentiment         text NOT NULL DEFAULT 'neutral' CHECK (sentiment IN ('positive', 'neutral', 'negative')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    last_activity_at  timestamptz NOT NULL DEFAULT now(),
    custom_attributes jsonb NOT NULL DEFAULT '{}',
    FOREIGN KEY (workspace_id, board_id) REFERENCES boards (workspace_id, id) ON DELETE CASCADE,
    FOREIGN KEY (board_id, column_id) REFERENCES board_columns (board_id, id)
);

-- Counts: one index-only scan over the workspace's entries, never the heap.
CREATE INDEX contacts_counts_idx ON contacts (workspace_id)
    INCLUDE (archived, status, priority, assigned_to, needs_response, follow_up, favorite,
             sentiment, created_at, last_activity_at);

-- List pages: each sort walks its index in order and stops after one page.
CREATE INDEX contacts_board_created_idx ON contacts (board_id, created_at, id);
CREATE INDEX contacts_board_updated_idx ON contacts (board_id, updated_at, id);
CREATE INDEX contacts_board_activity_idx ON contacts (board_id, last_activity_at, id);
CREATE INDEX contacts_board_name_idx ON contacts (board_id, name, id);
CREATE INDEX contacts_board_column_created_idx ON contacts (board_id, column_id, created_at, id);
-- Page totals per board and filter, again without touching the heap.
CREATE INDEX contacts_board_totals_idx ON contacts (board_id)
    INCLUDE (column_id, archived, status, priority, assigned_to, needs_response, follow_up,
             favorite, sentiment, created_at, last_activity_at);

CREATE INDEX contacts_search_idx ON contacts
    USING gin ((lower(name || ' ' || coalesce(email, '') || ' ' || coalesce(company, ''))) gin_trgm_ops);

CREATE TABLE workspace_cache_settings (
    workspace_id text PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    settings     jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Any writer of contacts (the CRM itself included) tells the origins which board changed.
-- NOTIFY folds identical payloads within a transaction, so a bulk update sends one per
-- board. Writers that invalidate by themselves set edgecache.skip_notify for their transaction.
CREATE FUNCTION contacts_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('edgecache.skip_notify', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('edgecache_contacts', OLD.workspace_id || ':' || OLD.board_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('edgecache_contacts', NEW.workspace_id || ':' || NEW.board_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER contacts_notify_change
    AFTER INSERT OR UPDATE OR DELETE ON contacts
    FOR EACH ROW EXECUTE FUNCTION contacts_notify_change();
