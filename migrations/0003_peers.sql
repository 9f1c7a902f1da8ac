-- Known peers: learned over mDNS, added by hand, or paired. Times are Unix epoch milliseconds.
-- The credential columns are secrets: the database file is 0600 in a 0700 data dir.

CREATE TABLE peers (
    node_id         TEXT    PRIMARY KEY NOT NULL,   -- 32 hex: SHA-256 of the peer's public key, truncated
    name            TEXT    NOT NULL,               -- the hostname the peer reports
    address         TEXT    NOT NULL,               -- where we call it now
    addresses       TEXT    NOT NULL DEFAULT '[]',  -- JSON array: every address it was seen at
    port            INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    platform        TEXT    NOT NULL DEFAULT '',
    version         TEXT    NOT NULL DEFAULT '',
    capabilities    TEXT    NOT NULL DEFAULT '[]',  -- JSON array of strings
    public_key      TEXT,                           -- base64 X9.63 P-256 key; nodeId derives from it
    fingerprint     TEXT,                           -- hex SHA-256 of its TLS SubjectPublicKeyInfo: the pin
    tls             INTEGER NOT NULL DEFAULT 0 CHECK (tls IN (0, 1)),
    status          TEXT    NOT NULL DEFAULT 'unknown' CHECK (status IN ('online', 'offline', 'unknown')),
    last_seen       INTEGER,
    last_checked    INTEGER,
    failures        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    source          TEXT    NOT NULL CHECK (source IN ('mdns', 'manual', 'paired')),
    api_key         TEXT,                           -- the credential we present when we call it
    accept_key_hash TEXT    UNIQUE,                 -- hex SHA-256 of the credential it presents to us
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;
