-- Message search on the embedded store: FTS5 over the bodies (a tombstone has none), its
-- unicode61 tokenizer folding case and accents as the contact search does.
CREATE VIRTUAL TABLE messages_search USING fts5(
    body, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2');

CREATE TRIGGER messages_search_insert AFTER INSERT ON messages WHEN NEW.body IS NOT NULL
BEGIN
    INSERT INTO messages_search (rowid, body) VALUES (NEW.id, NEW.body);
END;

CREATE TRIGGER messages_search_update AFTER UPDATE OF body ON messages
BEGIN
    DELETE FROM messages_search WHERE rowid = OLD.id;
    INSERT INTO messages_search (rowid, body) SELECT NEW.id, NEW.body WHERE NEW.body IS NOT NULL;
END;

CREATE TRIGGER messages_search_delete AFTER DELETE ON messages
BEGIN
    DELETE FROM messages_search WHERE rowid = OLD.id;
END;

INSERT INTO messages_search (rowid, body) SELECT id, body FROM messages WHERE body IS NOT NULL;
