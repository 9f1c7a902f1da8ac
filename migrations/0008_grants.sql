-- Grants: what another machine may do on this node (the trust model). The owner's key may do
-- everything; a peer or an extra key (auth.allowedKeys) holds a set of capabilities:
-- context:read, context:write, messages, exec, transfer, tasks, approvals. NULL grants mean the config's
-- peers.defaultGrants, so a changed default applies to every peer never given grants explicitly.

ALTER TABLE peers ADD COLUMN grants TEXT;          -- comma-separated capabilities ('' = none)
ALTER TABLE peers ADD COLUMN transfer_paths TEXT;  -- JSON array: the peer's own transfer roots (NULL: no narrowing)

CREATE TABLE key_grants (
    name           TEXT    PRIMARY KEY NOT NULL,   -- the auth.allowedKeys entry's name
    grants         TEXT    NOT NULL,               -- comma-separated capabilities ('' = none)
    transfer_paths TEXT,                           -- JSON array, as for peers
    updated_at     INTEGER NOT NULL
) WITHOUT ROWID;
