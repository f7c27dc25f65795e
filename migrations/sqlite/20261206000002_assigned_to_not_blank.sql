-- `assigned_to` is a user id, or NULL for unassigned, as in Postgres: blank values become
-- NULL, and triggers refuse new ones (SQLite cannot add a CHECK to a table).
UPDATE contacts SET assigned_to = NULL
WHERE trim(assigned_to, ' ' || char(9, 10, 13)) = '';

CREATE TRIGGER contacts_assigned_to_not_blank_insert BEFORE INSERT ON contacts
WHEN trim(NEW.assigned_to, ' ' || char(9, 10, 13)) = ''
BEGIN
    SELECT RAISE(ABORT, 'assigned_to must not be blank');
END;

CREATE TRIGGER contacts_assigned_to_not_blank_update BEFORE UPDATE OF assigned_to ON contacts
WHEN trim(NEW.assigned_to, ' ' || char(9, 10, 13)) = ''
BEGIN
    SELECT RAISE(ABORT, 'assigned_to must not be blank');
END;
