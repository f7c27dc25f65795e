-- Conversations and their messages (API.md "Message history"). Messages are appended far
-- more often than anything else happens to them; a page of one conversation is a range
-- scan of its key (conversation_id, id), newest first, that costs the same at any depth.
CREATE TABLE conversations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id    text NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    contact_id      bigint NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_message_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, id)
);

-- The workspace's conversations by their latest message, and one contact's.
CREATE INDEX conversations_recent_idx ON conversations (workspace_id, last_message_at, id);
CREATE INDEX conversations_contact_idx ON conversations (contact_id, last_message_at, id);

-- The key is (conversation, id): a page is a range of it, and there is no index on id
-- alone that the planner could walk backwards from the newest message of the whole table
-- (skipping every other conversation's) when it misjudges how common a conversation is.
-- The foreign key keeps a message in its conversation's workspace.
CREATE TABLE messages (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    workspace_id    text NOT NULL,
    conversation_id bigint NOT NULL,
    sender_type     text NOT NULL CHECK (sender_type IN ('contact', 'agent', 'bot')),
    sender_id       text CHECK (length(sender_id) BETWEEN 1 AND 64),
    body            text NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    edited_at       timestamptz,
    PRIMARY KEY (conversation_id, id),
    FOREIGN KEY (workspace_id, conversation_id)
        REFERENCES conversations (workspace_id, id) ON DELETE CASCADE
);

-- Other writers' messages reach the caches as the contacts' changes do, on the same
-- channel: `{workspace}:c{conversation}{s|a|e}` for started, appended, edited or deleted.
CREATE FUNCTION messages_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('edgecache.skip_notify', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'conversations' THEN
        PERFORM pg_notify('edgecache_contacts', NEW.workspace_id || ':c' || NEW.id || 's');
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('edgecache_contacts', NEW.workspace_id || ':c' || NEW.conversation_id || 'a');
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM pg_notify('edgecache_contacts', NEW.workspace_id || ':c' || NEW.conversation_id || 'e');
    ELSE
        PERFORM pg_notify('edgecache_contacts', OLD.workspace_id || ':c' || OLD.conversation_id || 'e');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER messages_notify_change
    AFTER INSERT OR UPDATE OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_notify_change();

CREATE TRIGGER conversations_notify_change
    AFTER INSERT OR UPDATE ON conversations
    FOR EACH ROW EXECUTE FUNCTION messages_notify_change();
