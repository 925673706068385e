-- Keyset walks of the ledger (ORDER BY uid) for one partition, and for what one run wrote in one
-- partition (a materializing run's checks, rollback of a run): with uid last in the index, each
-- page is an index range scan instead of a scan of the target's whole ledger.
DROP INDEX IF EXISTS reingest.ledger_partition_idx;
CREATE INDEX ledger_partition_uid_idx ON reingest.ledger (target, source, ingest_date, uid);
DROP INDEX IF EXISTS reingest.ledger_run_idx;
CREATE INDEX ledger_run_partition_uid_idx
    ON reingest.ledger (run_id, target, source, ingest_date, uid);
