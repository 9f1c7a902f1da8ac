-- Successful reads are summarised in the audit log: one row per caller, method, path, status
-- and address per flush (250 ms), with how many requests it stands for. Every other request
-- (writes, errors, refusals) keeps a row of its own (count 1).

ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1);
