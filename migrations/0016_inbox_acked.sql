-- Each sender keeps its most recently acked messages.maxInboxPerSender messages; the daemon's
-- upkeep forgets older acked ones (MessageStore.forgetAcked) every 10 s. This index finds the
-- senders past that number and each one's acked rows from the latest ack back, with whether a
-- receipt is still owed, without reading a row (nor its body, whose overflow pages come before
-- the receipt column) or sorting: a node with 50 peers may hold 100,000 acked rows.
CREATE INDEX inbox_acked ON inbox (from_node, acked_at, seq, receipt) WHERE state = 'acked';
