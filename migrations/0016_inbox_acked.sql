-- Each sender keeps its newest messages.maxInboxPerSender acked messages; the daemon's upkeep
-- forgets older ones (MessageStore.forgetAcked) every 10 s. This index finds the senders past
-- that number and each one's acked rows in order, without reading the bodies or sorting: a
-- node with 50 peers may hold 50,000 acked rows.
CREATE INDEX inbox_acked ON inbox (from_node, seq) WHERE state = 'acked';
