-- REINGEST_MAX_ATTEMPTS bounds repairs, and only repairs (runs of repair_job): a forced or plain
-- re-run that fails a document again must not turn its failure permanent. attempts keeps
-- counting every run that failed the document. Rows from before counted their first run and
-- any re-run as attempts; all but the first are taken as repairs.
ALTER TABLE reingest.ingestion_failures ADD COLUMN repair_attempts integer NOT NULL DEFAULT 0;
UPDATE reingest.ingestion_failures SET repair_attempts = attempts - 1 WHERE attempts > 1;
