-- Context store and request audit: the first tables of loopsyd.
-- Times are Unix epoch milliseconds; ttl is seconds.

CREATE TABLE context (
    key          TEXT    PRIMARY KEY NOT NULL,
    value        TEXT    NOT NULL,
    from_node_id TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    ttl          INTEGER,
    expires_at   INTEGER,
    revision     INTEGER NOT NULL CHECK (revision >= 1)
) WITHOUT ROWID;

CREATE INDEX context_expires_at ON context (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    time        INTEGER NOT NULL,
    request_id  TEXT    NOT NULL,
    caller      TEXT    NOT NULL,
    method      TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    status      INTEGER NOT NULL,
    duration_ms REAL    NOT NULL,
    remote      TEXT    NOT NULL
);

CREATE INDEX audit_time ON audit (time);
