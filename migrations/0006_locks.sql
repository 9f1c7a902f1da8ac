-- Locks with leases (coordination between agents). A lock is held until its lease expires or
-- its holder releases it; every acquisition gets a fencing token larger than any before it on
-- this node, so a resource can refuse writes from a holder whose lease ended. Times are Unix
-- epoch milliseconds.

CREATE TABLE locks (
    name        TEXT    PRIMARY KEY NOT NULL,
    holder      TEXT    NOT NULL,   -- who holds it, as the caller named itself
    owner       TEXT    NOT NULL,   -- the credential that took it (the audit log's caller)
    token       INTEGER NOT NULL,   -- fencing token of this acquisition
    acquired_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- The last fencing token handed out: tokens only grow, across releases, expiries and restarts.
CREATE TABLE lock_tokens (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
);
INSERT INTO lock_tokens (id, last) VALUES (1, 0);
