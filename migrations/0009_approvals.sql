-- Live sessions: Claude Code permission prompts relayed by loopsy-mcp, and a message type that
-- carries them to approver peers. Times are Unix epoch milliseconds.

CREATE TABLE approvals (
    id            TEXT    PRIMARY KEY NOT NULL,   -- 'apr_' + 16 hex: also the id of the messages sent to approvers
    request_id    TEXT    NOT NULL,               -- Claude Code's request_id
    tool_name     TEXT    NOT NULL,
    description   TEXT    NOT NULL,
    input_preview TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'allowed', 'denied', 'expired')),
    sent_to       TEXT    NOT NULL DEFAULT '[]',  -- JSON array: the approver peers' nodeIds
    answered_by   TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    answered_at   INTEGER
) WITHOUT ROWID;

CREATE INDEX approvals_pending ON approvals (expires_at) WHERE state = 'pending';

-- Messages gain the type 'approval' (and inbox rows the time they were first pushed into a live
-- session). SQLite cannot change a CHECK constraint in place, so both tables are rebuilt with
-- the same rows.
CREATE TABLE outbox_new (
    id              TEXT    NOT NULL,
    to_node         TEXT    NOT NULL,
    to_name         TEXT    NOT NULL,
    type            TEXT    NOT NULL CHECK (type IN ('chat', 'request', 'response', 'broadcast', 'approval')),
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
INSERT INTO outbox_new SELECT * FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE state = 'queued';
CREATE INDEX outbox_created ON outbox (created_at);

CREATE TABLE inbox_new (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL,
    from_node       TEXT    NOT NULL,
    from_name       TEXT    NOT NULL,
    type            TEXT    NOT NULL CHECK (type IN ('chat', 'request', 'response', 'broadcast', 'approval')),
    body            TEXT    NOT NULL,
    reply_to        TEXT,
    thread          TEXT,
    created_at      INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('unread', 'read', 'acked')),
    read_at         INTEGER,
    acked_at        INTEGER,
    ack_note        TEXT,
    receipt         TEXT    CHECK (receipt IN ('read', 'acked')),
    receipt_attempts INTEGER NOT NULL DEFAULT 0,
    receipt_next_at INTEGER,
    session_at      INTEGER,                -- first pushed into a live Claude Code session (loopsy-mcp's channel)
    UNIQUE (from_node, id)
);
INSERT INTO inbox_new (seq, id, from_node, from_name, type, body, reply_to, thread, created_at, received_at, expires_at,
                       state, read_at, acked_at, ack_note, receipt, receipt_attempts, receipt_next_at)
    SELECT seq, id, from_node, from_name, type, body, reply_to, thread, created_at, received_at, expires_at,
           state, read_at, acked_at, ack_note, receipt, receipt_attempts, receipt_next_at FROM inbox;
-- Keep the seq counter (long-poll cursors must never see a number again).
DELETE FROM sqlite_sequence WHERE name = 'inbox_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'inbox_new', seq FROM sqlite_sequence WHERE name = 'inbox';
DROP TABLE inbox;
ALTER TABLE inbox_new RENAME TO inbox;
CREATE INDEX inbox_receipts ON inbox (receipt_next_at) WHERE receipt IS NOT NULL;
