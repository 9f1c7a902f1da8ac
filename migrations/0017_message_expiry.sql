-- The daemon's upkeep drops expired messages every 10 s (MessageStore.prune). Without an index
-- on expires_at it scanned both tables, and since expires_at comes after the body, each row's
-- body (up to 64 KiB, in overflow pages) was read to reach it, under the writer's lock that
-- requests wait for: about 200 MiB read every 10 s for one peer at messages.maxInboxPerSender.
-- These find the expired rows without reading one ("USING COVERING INDEX" in both plans;
-- `state` is named in the outbox one for that, as in 0016).
CREATE INDEX inbox_expires ON inbox (expires_at);
CREATE INDEX outbox_expires ON outbox (expires_at, state) WHERE state != 'queued';
