-- The embedded store's documents folded as shared/src/search.rs folds a query and as
-- Postgres's unaccent folds its documents: unicode61 removes the accents a letter is
-- composed with (é, ñ, ș) but keeps letters of their own (ß, ø, æ, ł, đ, þ, ı), Greek
-- vowels with their tonos and ё, so on this store `søren` found nothing, typed as stored.
-- Each search table now indexes a generated column with those spelled out.
ALTER TABLE contacts ADD COLUMN search_text TEXT GENERATED ALWAYS AS (
    replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(name || ' ' || coalesce(email, '') || ' ' || coalesce(company, '')
        , 'đ', 'd')
        , 'Đ', 'd')
        , 'ð', 'd')
        , 'Ð', 'd')
        , 'ħ', 'h')
        , 'Ħ', 'h')
        , 'ı', 'i')
        , 'ŀ', 'l')
        , 'Ŀ', 'l')
        , 'ł', 'l')
        , 'Ł', 'l')
        , 'ŉ', 'n')
        , 'ŋ', 'n')
        , 'Ŋ', 'n')
        , 'ø', 'o')
        , 'Ø', 'o')
        , 'ŧ', 't')
        , 'Ŧ', 't')
        , 'ß', 'ss')
        , 'ẞ', 'ss')
        , 'æ', 'ae')
        , 'Æ', 'ae')
        , 'œ', 'oe')
        , 'Œ', 'oe')
        , 'þ', 'th')
        , 'Þ', 'th')
        , 'ĳ', 'ij')
        , 'Ĳ', 'ij')
        , 'ĸ', 'q')
        , 'ά', 'α')
        , 'Ά', 'α')
        , 'έ', 'ε')
        , 'Έ', 'ε')
        , 'ή', 'η')
        , 'Ή', 'η')
        , 'ί', 'ι')
        , 'Ί', 'ι')
        , 'ϊ', 'ι')
        , 'Ϊ', 'ι')
        , 'ΐ', 'ι')
        , 'ό', 'ο')
        , 'Ό', 'ο')
        , 'ύ', 'υ')
        , 'Ύ', 'υ')
        , 'ϋ', 'υ')
        , 'Ϋ', 'υ')
        , 'ΰ', 'υ')
        , 'ώ', 'ω')
        , 'Ώ', 'ω')
        , 'ё', 'е')
        , 'Ё', 'е')) VIRTUAL;

DROP TRIGGER contacts_search_insert;
DROP TRIGGER contacts_search_update;

CREATE TRIGGER contacts_search_insert AFTER INSERT ON contacts
BEGIN
    INSERT INTO contacts_search (rowid, doc) VALUES (NEW.id, NEW.search_text || ' ' || NEW.phone_digits);
    INSERT INTO contacts_search_phone (rowid, digits) VALUES (NEW.id, NEW.phone_digits);
END;

CREATE TRIGGER contacts_search_update AFTER UPDATE OF name, email, company, phone ON contacts
BEGIN
    DELETE FROM contacts_search WHERE rowid = OLD.id;
    DELETE FROM contacts_search_phone WHERE rowid = OLD.id;
    INSERT INTO contacts_search (rowid, doc) VALUES (NEW.id, NEW.search_text || ' ' || NEW.phone_digits);
    INSERT INTO contacts_search_phone (rowid, digits) VALUES (NEW.id, NEW.phone_digits);
END;

INSERT INTO contacts_search (contacts_search) VALUES ('delete-all');
INSERT INTO contacts_search (rowid, doc) SELECT id, search_text || ' ' || phone_digits FROM contacts;

ALTER TABLE messages ADD COLUMN search_text TEXT GENERATED ALWAYS AS (
    replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(body
        , 'đ', 'd')
        , 'Đ', 'd')
        , 'ð', 'd')
        , 'Ð', 'd')
        , 'ħ', 'h')
        , 'Ħ', 'h')
        , 'ı', 'i')
        , 'ŀ', 'l')
        , 'Ŀ', 'l')
        , 'ł', 'l')
        , 'Ł', 'l')
        , 'ŉ', 'n')
        , 'ŋ', 'n')
        , 'Ŋ', 'n')
        , 'ø', 'o')
        , 'Ø', 'o')
        , 'ŧ', 't')
        , 'Ŧ', 't')
        , 'ß', 'ss')
        , 'ẞ', 'ss')
        , 'æ', 'ae')
        , 'Æ', 'ae')
        , 'œ', 'oe')
        , 'Œ', 'oe')
        , 'þ', 'th')
        , 'Þ', 'th')
        , 'ĳ', 'ij')
        , 'Ĳ', 'ij')
        , 'ĸ', 'q')
        , 'ά', 'α')
        , 'Ά', 'α')
        , 'έ', 'ε')
        , 'Έ', 'ε')
        , 'ή', 'η')
        , 'Ή', 'η')
        , 'ί', 'ι')
        , 'Ί', 'ι')
        , 'ϊ', 'ι')
        , 'Ϊ', 'ι')
        , 'ΐ', 'ι')
        , 'ό', 'ο')
        , 'Ό', 'ο')
        , 'ύ', 'υ')
        , 'Ύ', 'υ')
        , 'ϋ', 'υ')
        , 'Ϋ', 'υ')
        , 'ΰ', 'υ')
        , 'ώ', 'ω')
        , 'Ώ', 'ω')
        , 'ё', 'е')
        , 'Ё', 'е')) VIRTUAL;

DROP TRIGGER messages_search_insert;
DROP TRIGGER messages_search_update;

CREATE TRIGGER messages_search_insert AFTER INSERT ON messages WHEN NEW.body IS NOT NULL
BEGIN
    INSERT INTO messages_search (rowid, body) VALUES (NEW.id, NEW.search_text);
END;

CREATE TRIGGER messages_search_update AFTER UPDATE OF body ON messages
BEGIN
    DELETE FROM messages_search WHERE rowid = OLD.id;
    INSERT INTO messages_search (rowid, body) SELECT NEW.id, NEW.search_text WHERE NEW.body IS NOT NULL;
END;

INSERT INTO messages_search (messages_search) VALUES ('delete-all');
INSERT INTO messages_search (rowid, body) SELECT id, search_text FROM messages WHERE body IS NOT NULL;
