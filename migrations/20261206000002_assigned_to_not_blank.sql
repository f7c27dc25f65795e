-- `assigned_to` is a user id, or NULL for unassigned. A blank one (written by another
-- application: the API refuses it) counted as unassigned in the counters, which fold NULL
-- and '' together, but was missing from the unassigned list (`IS NULL`). Blank values
-- become NULL (the workspaces' change counts tell the origins), and no new one is taken.
UPDATE contacts SET assigned_to = NULL WHERE assigned_to ~ '^\s*$';

ALTER TABLE contacts ADD CONSTRAINT contacts_assigned_to_not_blank
    CHECK (assigned_to !~ '^\s*$') NOT VALID;
ALTER TABLE contacts VALIDATE CONSTRAINT contacts_assigned_to_not_blank;
