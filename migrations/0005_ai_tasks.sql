-- Claude Code tasks run by this node, and everything they printed, so a stream can be resumed
-- (`?since=`, Last-Event-ID) after a client or daemon restart. Times are Unix epoch milliseconds.

CREATE TABLE ai_tasks (
    id                TEXT    PRIMARY KEY NOT NULL,
    caller            TEXT    NOT NULL,
    prompt            TEXT    NOT NULL,
    cwd               TEXT    NOT NULL,
    options           TEXT    NOT NULL DEFAULT '{}',  -- JSON: model, permissionMode, tools, budget, resume
    state             TEXT    NOT NULL CHECK (state IN ('pending', 'running', 'waiting_approval', 'completed',
                                                       'failed', 'cancelled')),
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    exit_code         INTEGER,
    session_id        TEXT,
    cost_usd          REAL,
    error             TEXT,
    last_seq          INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE INDEX ai_tasks_created ON ai_tasks (created_at);

CREATE TABLE ai_task_events (
    task_id TEXT    NOT NULL REFERENCES ai_tasks (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    time    INTEGER NOT NULL,
    type    TEXT    NOT NULL,
    data    TEXT    NOT NULL,                -- JSON object: the event's fields
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;
