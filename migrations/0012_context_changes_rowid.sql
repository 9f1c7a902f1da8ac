-- The change log's seq is an INTEGER PRIMARY KEY without AUTOINCREMENT. AUTOINCREMENT only
-- guarantees that the number of a deleted newest row is never handed out again; the log is
-- pruned from its oldest end and always keeps its newest row, so the next number is the
-- newest plus one either way. What it cost: every write also read and rewrote the table's
-- row in sqlite_sequence, one more page in every commit.

CREATE TABLE context_changes_new (
    seq      INTEGER PRIMARY KEY,
    key      TEXT    NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('put', 'delete', 'expire')),
    revision INTEGER NOT NULL,
    at       INTEGER NOT NULL
);

INSERT INTO context_changes_new (seq, key, kind, revision, at)
SELECT seq, key, kind, revision, at FROM context_changes ORDER BY seq;

DROP TABLE context_changes;
ALTER TABLE context_changes_new RENAME TO context_changes;
CREATE INDEX context_changes_key ON context_changes (key, seq);
DELETE FROM sqlite_sequence WHERE name = 'context_changes';
