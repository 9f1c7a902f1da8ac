-- Messages between agents on different nodes. Times are Unix epoch milliseconds.
-- The sender keeps one outbox row per recipient; the recipient keeps one inbox row per
-- (sender, id), so a message delivered twice is stored once.

CREATE TABLE outbox (
    id              TEXT    NOT NULL,               -- sender-chosen, unique per sender
    to_node         TEXT    NOT NULL,
    to_name         TEXT    NOT NULL,
    type            TEXT    NOT NULL CHECK (type IN ('chat', 'request', 'response', 'broadcast')),
    body            TEXT    NOT NULL,
    reply_to        TEXT,
    thread          TEXT,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('queued', 'delivered', 'read', 'acked', 'expired')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    delivered_at    INTEGER,
    read_at         INTEGER,
    acked_at        INTEGER,
    ack_note        TEXT,
    PRIMARY KEY (id, to_node)
) WITHOUT ROWID;

CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE state = 'queued';
CREATE INDEX outbox_created ON outbox (created_at);

CREATE TABLE inbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT, -- arrival order (long-poll cursor)
    id              TEXT    NOT NULL,
    from_node       TEXT    NOT NULL,
    from_name       TEXT    NOT NULL,
    type            TEXT    NOT NULL CHECK (type IN ('chat', 'request', 'response', 'broadcast')),
    body            TEXT    NOT NULL,
    reply_to        TEXT,
    thread          TEXT,
    created_at      INTEGER NOT NULL,                -- the sender's timestamp
    received_at     INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('unread', 'read', 'acked')),
    read_at         INTEGER,
    acked_at        INTEGER,
    ack_note        TEXT,
    -- The read/acked receipt still owed to the sender (NULL once it arrived there).
    receipt         TEXT    CHECK (receipt IN ('read', 'acked')),
    receipt_attempts INTEGER NOT NULL DEFAULT 0,
    receipt_next_at INTEGER,
    UNIQUE (from_node, id)
);

CREATE INDEX inbox_receipts ON inbox (receipt_next_at) WHERE receipt IS NOT NULL;
