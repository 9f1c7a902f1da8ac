-- Each sender keeps its most recently acked messages.maxInboxPerSender messages; the daemon's
-- upkeep forgets older acked ones (MessageStore.forgetAcked) every 10 s. This index finds the
-- senders past that number and each one's acked rows from the latest ack back, with whether a
-- receipt is still owed, without reading a row (nor its body, whose overflow pages come before
-- the state and receipt columns) or sorting: a node with 50 peers may hold 100,000 acked rows.
-- `state` is in it as well as in its WHERE: SQLite 3.40 counts an index covering only with
-- every column a query names, and the queries name it ("USING COVERING INDEX" in their plans).
CREATE INDEX inbox_acked ON inbox (from_node, acked_at, seq, receipt, state) WHERE state = 'acked';
