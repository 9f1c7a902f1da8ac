-- The audit log's id is an INTEGER PRIMARY KEY without AUTOINCREMENT, as the change log's is
-- since 0012. AUTOINCREMENT read and rewrote the table's row in sqlite_sequence for every row
-- inserted: 6.3 against 3.7 µs a row (a script inserting 512 rows to a transaction into this
-- table). What it guaranteed, that an id is never handed out again, holds without it: a new
-- row takes the newest id plus one, and the prunes never delete the newest row (AuditStore.prune:
-- by count at least one stays, by age all but the newest). So a cursor that `GET /audit?after=`
-- holds stays meaningful.

CREATE TABLE audit_new (
    id          INTEGER PRIMARY KEY,
    time        INTEGER NOT NULL,
    request_id  TEXT    NOT NULL,
    caller      TEXT    NOT NULL,
    method      TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    status      INTEGER NOT NULL,
    duration_ms REAL    NOT NULL,
    remote      TEXT    NOT NULL,
    count       INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1)
);

INSERT INTO audit_new (id, time, request_id, caller, method, path, status, duration_ms, remote, count)
SELECT id, time, request_id, caller, method, path, status, duration_ms, remote, count FROM audit ORDER BY id;

-- The row with the number handed out last may be gone (pruned by age: on an idle node every
-- row, or after a clock step back the newest): a row takes the next number (the one handed
-- out last may have been seen by a client), and numbering goes on after it.
INSERT INTO audit_new (id, time, request_id, caller, method, path, status, duration_ms, remote, count)
SELECT seq + 1, CAST(strftime('%s', 'now') AS INTEGER) * 1000, 'migration-0014', 'loopsyd', '*',
       '(the newest entries were pruned; numbering goes on from here)', 0, 0, '', 1
FROM sqlite_sequence WHERE name = 'audit' AND seq > (SELECT coalesce(max(id), 0) FROM audit);

DROP TABLE audit;
ALTER TABLE audit_new RENAME TO audit;
CREATE INDEX audit_time ON audit (time);
DELETE FROM sqlite_sequence WHERE name = 'audit';
