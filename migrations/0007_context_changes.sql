-- Every change of a context key, in order: what watches (`GET /context?prefix=&after=&wait=`)
-- read, by cursor (`seq`), so a client that reconnects misses nothing and sees nothing twice.
-- Values are not kept here (the entry holds the current one); the log keeps the newest 100000
-- changes. Times are Unix epoch milliseconds.

CREATE TABLE context_changes (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    key      TEXT    NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('put', 'delete', 'expire')),
    revision INTEGER NOT NULL,
    at       INTEGER NOT NULL
);

CREATE INDEX context_changes_key ON context_changes (key, seq);
