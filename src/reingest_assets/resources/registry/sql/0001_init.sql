-- The existing service's registry. Created here only where it does not exist yet (embedded stack,
-- tests); in production the table is already there and this is a no-op.
CREATE TABLE IF NOT EXISTS documents (
    uid           text PRIMARY KEY,
    source        text NOT NULL,
    source_id     text NOT NULL,
    title         text,
    published_at  date,
    s3_raw_uri    text NOT NULL,
    content_hash  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Keyset pagination over one partition (source, day of updated_at) needs this order.
CREATE INDEX IF NOT EXISTS documents_source_updated_uid_idx ON documents (source, updated_at, uid);

CREATE SCHEMA IF NOT EXISTS reingest;

-- What the chunk store holds for each document, by construction: a row is written only after
-- the store confirmed every chunk of the document. One row per (target store, document).
CREATE TABLE reingest.ledger (
    target           text NOT NULL,
    uid              text NOT NULL,
    source           text NOT NULL,
    ingest_date      date NOT NULL,
    content_hash     text NOT NULL,
    chunker_version  text NOT NULL,
    embedder_id      text NOT NULL,
    chunk_uuids      uuid[] NOT NULL,
    run_id           text NOT NULL,
    written_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target, uid)
);
CREATE INDEX ledger_partition_idx ON reingest.ledger (target, source, ingest_date);
CREATE INDEX ledger_run_idx ON reingest.ledger (run_id);

CREATE TABLE reingest.ingestion_failures (
    id               bigserial PRIMARY KEY,
    uid              text NOT NULL,
    source           text NOT NULL,
    ingest_date      date NOT NULL,
    stage            text NOT NULL CHECK (stage IN ('fetch','parse','normalize','chunk','embed','store')),
    kind             text NOT NULL CHECK (kind IN ('transient','data')),
    error_class      text NOT NULL,
    message          text NOT NULL,
    content_hash     text,
    attempts         integer NOT NULL DEFAULT 1,
    first_seen       timestamptz NOT NULL DEFAULT now(),
    last_seen        timestamptz NOT NULL DEFAULT now(),
    run_id           text NOT NULL,
    resolved_at      timestamptz,
    resolved_run_id  text,
    permanent        boolean NOT NULL DEFAULT false
);
-- At most one open failure per document: a repeat bumps attempts instead of adding rows.
CREATE UNIQUE INDEX ingestion_failures_open_uid_idx
    ON reingest.ingestion_failures (uid) WHERE resolved_at IS NULL;
CREATE INDEX ingestion_failures_partition_idx
    ON reingest.ingestion_failures (source, ingest_date) WHERE resolved_at IS NULL;
