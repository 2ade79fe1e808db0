-- Messages to one person from one page (a lane: `page/person`) go to Messenger one at a time,
-- in the order they were accepted among those due. A claim skips a person who has a message
-- claimed, or one that `holds` the lane: a queued message waiting for its retry or for a page's
-- pause. Rows written before this migration have no `person`: each is a lane of its own.
ALTER TABLE outbox ADD COLUMN person text;
ALTER TABLE outbox ADD COLUMN holds boolean NOT NULL DEFAULT false;
-- A claim looks up each candidate's person. Not a claim column: a claim stays a HOT update.
CREATE INDEX outbox_person ON outbox (person);
-- Claims walk the outbox in due order, and messages due at the same moment in the order of
-- their ids (which sort by creation, byte by byte: hence "C"), so that a person's earlier
-- message is never left behind a LIMIT that took a later one.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (due, message_id COLLATE "C");
