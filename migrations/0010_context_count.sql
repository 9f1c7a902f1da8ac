-- How many rows of `context` count against context.maxEntries (every key but the message
-- mirrors `inbox:…` and `outbox:…`, expired rows not yet swept included), kept by triggers so
-- that creating a key reads one row instead of counting the table. The live count is this
-- minus the expired rows, which the partial index on expires_at finds.

CREATE TABLE context_stats (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    entries INTEGER NOT NULL
);

INSERT INTO context_stats (id, entries)
SELECT 1, count(*) FROM context
WHERE NOT (key >= 'inbox:' AND key < 'inbox;') AND NOT (key >= 'outbox:' AND key < 'outbox;');

-- Writes of an existing key are updates (INSERT … ON CONFLICT DO UPDATE), which fire neither.
CREATE TRIGGER context_stats_insert AFTER INSERT ON context
WHEN NOT (new.key >= 'inbox:' AND new.key < 'inbox;') AND NOT (new.key >= 'outbox:' AND new.key < 'outbox;')
BEGIN
    UPDATE context_stats SET entries = entries + 1 WHERE id = 1;
END;

CREATE TRIGGER context_stats_delete AFTER DELETE ON context
WHEN NOT (old.key >= 'inbox:' AND old.key < 'inbox;') AND NOT (old.key >= 'outbox:' AND old.key < 'outbox;')
BEGIN
    UPDATE context_stats SET entries = entries - 1 WHERE id = 1;
END;
