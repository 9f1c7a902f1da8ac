-- Finished remote-execution jobs (running ones live in the daemon's memory).
-- Times are Unix epoch milliseconds.

CREATE TABLE jobs (
    id          TEXT    PRIMARY KEY NOT NULL,
    caller      TEXT    NOT NULL,
    command     TEXT    NOT NULL,
    args        TEXT    NOT NULL,            -- JSON array of strings
    cwd         TEXT    NOT NULL,
    pid         INTEGER NOT NULL,
    streamed    INTEGER NOT NULL CHECK (streamed IN (0, 1)),
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    exit_code   INTEGER,
    signal      TEXT,
    timed_out   INTEGER NOT NULL CHECK (timed_out IN (0, 1)),
    truncated   INTEGER NOT NULL CHECK (truncated IN (0, 1)),
    cancelled   INTEGER NOT NULL CHECK (cancelled IN (0, 1)),
    duration_ms REAL    NOT NULL
);

CREATE INDEX jobs_finished_at ON jobs (finished_at);
