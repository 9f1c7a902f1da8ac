-- The change log loses its (key, seq) index. Nothing reads through it: a watch asks for the
-- changes after its cursor of keys in a prefix's range, oldest first, and SQLite answers that
-- in seq order from the cursor on (the rowid), which reads only what is new (0.2 ms with the
-- 100000 changes the log keeps). Through the index, had statistics (ANALYZE, which loopsyd
-- never runs) made SQLite choose it, it would read every key in the range, join and sort them:
-- 160-290 ms for a watch of all keys. Every context write
-- updated it, though: about a quarter of the pages a group of writes committed to the WAL
-- (frames of 1,868 commits under bench/context.sh: context 7,098, this index 4,560, the log
-- 1,948, the count 1,850).

DROP INDEX context_changes_key;
