-- Every origin instance listens to the change notices, and one of them is enough to act
-- on each (the generations, the edge's outbox and the event streams are shared through
-- Redis): a notice now ends in its transaction id, which the instances claim it by.
-- Identical notices of one transaction are still folded into one by NOTIFY.
CREATE OR REPLACE FUNCTION contacts_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('edgecache.skip_notify', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('edgecache_contacts', OLD.workspace_id || ':' || OLD.board_id || ':' || txid_current());
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('edgecache_contacts', NEW.workspace_id || ':' || NEW.board_id || ':' || txid_current());
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION messages_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    tx text := ':' || txid_current();
BEGIN
    IF coalesce(current_setting('edgecache.skip_notify', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'conversations' THEN
        PERFORM pg_notify('edgecache_contacts', NEW.workspace_id || ':c' || NEW.id || 's' || tx);
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('edgecache_contacts', NEW.workspace_id || ':c' || NEW.conversation_id || 'a' || tx);
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM pg_notify('edgecache_contacts', NEW.workspace_id || ':c' || NEW.conversation_id || 'e' || tx);
    ELSE
        PERFORM pg_notify('edgecache_contacts', OLD.workspace_id || ':c' || OLD.conversation_id || 'e' || tx);
    END IF;
    RETURN NULL;
END;
$$;
