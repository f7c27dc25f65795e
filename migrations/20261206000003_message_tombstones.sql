-- Authorship: an edit records who made it, and a delete leaves a tombstone (when, by
-- whom, no body) that pages show in place of the message, instead of removing the row.
ALTER TABLE messages ALTER COLUMN body DROP NOT NULL;
ALTER TABLE messages
    ADD COLUMN edited_by  text CHECK (length(edited_by) BETWEEN 1 AND 64),
    ADD COLUMN deleted_at timestamptz,
    ADD COLUMN deleted_by text CHECK (length(deleted_by) BETWEEN 1 AND 64);
ALTER TABLE messages ADD CONSTRAINT messages_tombstone_has_no_body
    CHECK ((deleted_at IS NULL) = (body IS NOT NULL)) NOT VALID;
ALTER TABLE messages VALIDATE CONSTRAINT messages_tombstone_has_no_body;
