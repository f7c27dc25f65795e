-- Changes made by writers other than the API (transactions that leave
-- edgecache.skip_notify unset), counted per workspace in the writing transaction. The
-- notices of such writes are lost while no origin listens (every origin down, or each
-- one's LISTEN reconnecting), so an origin that starts or reconnects compares these
-- counts with the ones Redis last saw acted on and moves on the workspaces that changed.
-- One upsert per statement and workspace, in workspace order (no deadlock between two
-- statements that touch the same workspaces).
CREATE TABLE workspace_changes (
    workspace_id text PRIMARY KEY,
    seq bigint NOT NULL
);

CREATE FUNCTION count_workspace_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('edgecache.skip_notify', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    INSERT INTO workspace_changes AS w (workspace_id, seq)
    SELECT DISTINCT workspace_id, 1 FROM changed_rows ORDER BY workspace_id
    ON CONFLICT (workspace_id) DO UPDATE SET seq = w.seq + 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER contacts_changes_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION count_workspace_changes();
CREATE TRIGGER contacts_changes_update AFTER UPDATE ON contacts
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION count_workspace_changes();
CREATE TRIGGER contacts_changes_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION count_workspace_changes();
CREATE TRIGGER conversations_changes_insert AFTER INSERT ON conversations
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION count_workspace_changes();
CREATE TRIGGER conversations_changes_update AFTER UPDATE ON conversations
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION count_workspace_changes();
CREATE TRIGGER conversations_changes_delete AFTER DELETE ON conversations
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION count_workspace_changes();
CREATE TRIGGER messages_changes_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION count_workspace_changes();
CREATE TRIGGER messages_changes_update AFTER UPDATE ON messages
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION count_workspace_changes();
CREATE TRIGGER messages_changes_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION count_workspace_changes();
