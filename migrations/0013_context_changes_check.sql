-- The change log's kind is checked with comparisons, not `kind IN ('put', 'delete', 'expire')`:
-- SQLite evaluates an IN list of three by building a temporary b-tree of the list, on every
-- row inserted. That was one b-tree created and dropped per context write (about 10,000 of the
-- 250,000 instructions a PUT costs). The rule is the same.

CREATE TABLE context_changes_new (
    seq      INTEGER PRIMARY KEY,
    key      TEXT    NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind = 'put' OR kind = 'delete' OR kind = 'expire'),
    revision INTEGER NOT NULL,
    at       INTEGER NOT NULL
);

INSERT INTO context_changes_new (seq, key, kind, revision, at)
SELECT seq, key, kind, revision, at FROM context_changes ORDER BY seq;

DROP TABLE context_changes;
ALTER TABLE context_changes_new RENAME TO context_changes;
CREATE INDEX context_changes_key ON context_changes (key, seq);
