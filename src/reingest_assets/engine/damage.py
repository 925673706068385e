"""Damage in the chunk store: what the checks call missing, orphan and altered chunks, per chunk
and per document. Validation counts it; a verifying repair (run config ``verify``) rewrites the
damaged documents and deletes the orphans, so a failed check becomes repair work for exactly
the documents it found, without forcing a whole partition. Read-only."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from reingest_assets.domain.ids import chunk_uuid
from reingest_assets.resources.registry import Ledger
from reingest_assets.resources.stores import ChunkStore, StoredChunk

REQUIRED_META = ("chunk_id", "chunk_index", "chunker_version", "tokenizer", "max_tokens")
TITLE_MARKER = "[Title] "

# The per-chunk findings, as validation names them.
MISSING_METADATA = "missing_metadata"
UUID_FORMULA = "uuid_formula"
EMPTY = "empty_chunks"
OVER_MAX_TOKENS = "over_max_tokens"
REPEATED_TITLE = "repeated_title"


def chunk_problems(chunk: StoredChunk, max_tokens: int) -> list[str]:
    """What the per-chunk checks find wrong with one stored chunk (empty: nothing)."""
    problems = []
    props = chunk.properties
    meta = props.get("meta") or {}
    if (
        not chunk.parent_uid
        or not props.get("source")
        or any(meta.get(k) is None for k in REQUIRED_META)
    ):
        problems.append(MISSING_METADATA)
    chunk_id = meta.get("chunk_id")
    if chunk_id is None or chunk_uuid(chunk.parent_uid, chunk_id) != chunk.uuid:
        problems.append(UUID_FORMULA)
    text = props.get("text") or ""
    tokens = props.get("tokens") or 0
    if not text.strip() or tokens <= 0:
        problems.append(EMPTY)
    elif tokens > max_tokens:
        problems.append(OVER_MAX_TOKENS)
    if meta.get("chunk_index", 0) > 0 and TITLE_MARKER in text:
        problems.append(REPEATED_TITLE)
    return problems


def damaged_documents(
    registry: Ledger, store: ChunkStore, uids: Sequence[str], *, max_tokens: int
) -> set[str]:
    """Which of these documents the ledger holds that the store does not hold as the ledger
    says: a chunk missing, a chunk the ledger does not list (orphan), or a chunk failing the
    per-chunk checks (altered). One ledger lookup and one store read for the lot."""
    if not uids:
        return set()
    ledger = registry.ledger_lookup(store.target, uids)
    stored: dict[str, set[str]] = defaultdict(set)
    damaged = set()
    for chunk in store.fetch(list(ledger)):
        stored[chunk.parent_uid].add(chunk.uuid)
        if chunk_problems(chunk, max_tokens):
            damaged.add(chunk.parent_uid)
    damaged.update(uid for uid, e in ledger.items() if set(e.chunk_uuids) != stored[uid])
    return damaged
