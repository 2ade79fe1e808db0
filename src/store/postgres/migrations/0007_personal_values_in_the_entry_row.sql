-- An audit entry's erasable values (the recipient, consent evidence: see src/domain/audit) move
-- from a table of their own into the entry's row (issue 18). Each entry was two rows, each with
-- its own header, chain and seq, and a primary key on them: ~240 bytes and an INSERT statement
-- more a message, and a join on every read of the log. Erasure sets the column to NULL where it
-- deleted rows; the entries' hashes cover the values' digest, not the values, so they hold.
--
-- The column is filled by rewriting the table (`ALTER … TYPE … USING`), which leaves it compact,
-- where an UPDATE would leave a dead copy of every row: 305,560 entries took 2.2 s on a 2-core
-- machine. An instance of an earlier version would still write to `audit_personal`: every
-- instance stops for it.
ALTER TABLE audit ADD COLUMN personal text;
CREATE FUNCTION pg_temp.herald_personal_of(c integer, s bigint) RETURNS text
    LANGUAGE sql STABLE
    AS 'SELECT personal FROM audit_personal WHERE chain = c AND seq = s';
ALTER TABLE audit ALTER COLUMN personal TYPE text USING pg_temp.herald_personal_of(chain, seq);
DROP FUNCTION pg_temp.herald_personal_of(integer, bigint);
DROP TABLE audit_personal;
