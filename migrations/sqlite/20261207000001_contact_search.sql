-- Contact search on the embedded store (shared/src/search.rs says what matches). FTS5, in
-- the bundled SQLite: its unicode61 tokenizer folds case and accents and splits e-mails
-- into words, its prefix indexes answer a word being typed without reading the board,
-- and its vocabulary lists the words a typo may have meant. Digits anywhere in a phone
-- number come from a second FTS5 table whose trigram tokenizer finds any substring.
ALTER TABLE contacts ADD COLUMN phone_digits TEXT GENERATED ALWAYS AS (
    replace(replace(replace(replace(replace(replace(replace(coalesce(phone, ''),
        ' ', ''), '-', ''), '(', ''), ')', ''), '+', ''), '.', ''), '/', '')) VIRTUAL;

CREATE VIRTUAL TABLE contacts_search USING fts5(
    doc, content = '', contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2', prefix = '1 2 3');
CREATE VIRTUAL TABLE contacts_search_phone USING fts5(
    digits, content = '', contentless_delete = 1, tokenize = 'trigram');
CREATE VIRTUAL TABLE contacts_search_words USING fts5vocab(contacts_search, 'row');

CREATE TRIGGER contacts_search_insert AFTER INSERT ON contacts
BEGIN
    INSERT INTO contacts_search (rowid, doc) VALUES (NEW.id,
        NEW.name || ' ' || coalesce(NEW.email, '') || ' ' || coalesce(NEW.company, '')
        || ' ' || NEW.phone_digits);
    INSERT INTO contacts_search_phone (rowid, digits) VALUES (NEW.id, NEW.phone_digits);
END;

CREATE TRIGGER contacts_search_update AFTER UPDATE OF name, email, company, phone ON contacts
BEGIN
    DELETE FROM contacts_search WHERE rowid = OLD.id;
    DELETE FROM contacts_search_phone WHERE rowid = OLD.id;
    INSERT INTO contacts_search (rowid, doc) VALUES (NEW.id,
        NEW.name || ' ' || coalesce(NEW.email, '') || ' ' || coalesce(NEW.company, '')
        || ' ' || NEW.phone_digits);
    INSERT INTO contacts_search_phone (rowid, digits) VALUES (NEW.id, NEW.phone_digits);
END;

CREATE TRIGGER contacts_search_delete AFTER DELETE ON contacts
BEGIN
    DELETE FROM contacts_search WHERE rowid = OLD.id;
    DELETE FROM contacts_search_phone WHERE rowid = OLD.id;
END;

INSERT INTO contacts_search (rowid, doc)
SELECT id, name || ' ' || coalesce(email, '') || ' ' || coalesce(company, '') || ' ' || phone_digits
FROM contacts;
INSERT INTO contacts_search_phone (rowid, digits) SELECT id, phone_digits FROM contacts;
