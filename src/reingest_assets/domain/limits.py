"""What one document may be: registry values the pipeline can store, checked before any work.

Values past these limits are refused up front as that document's failure, instead of failing a
whole batch at the first database index they do not fit.
"""

from __future__ import annotations

import unicodedata

from reingest_assets.domain.failures import DocumentError

# PostgreSQL's btree rows hold at most 2,704 bytes, and the ledger's keyset indexes put the uid
# after the run id, target, source and date: 1 KiB leaves room for all of them. A PubMed uid is
# about 16 bytes.
MAX_UID_BYTES = 1024
MAX_SOURCE_BYTES = 128


def registry_refusal(uid: str, source: str) -> DocumentError | None:
    """Why the pipeline cannot store a registry row with this uid and source, or None."""
    for name, value, limit in (("uid", uid, MAX_UID_BYTES), ("source", source, MAX_SOURCE_BYTES)):
        size = len(value.encode("utf-8", "surrogatepass"))
        if not value:
            return DocumentError("fetch", f"registry row refused: its {name} is empty")
        if size > limit:
            return DocumentError(
                "fetch",
                f"registry row refused: its {name} is {size} bytes, over the {limit}-byte limit "
                f"the ledger's indexes can hold; fix the {name} in the registry",
            )
        bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cs")), None)
        if bad is not None:
            return DocumentError(
                "fetch",
                f"registry row refused: its {name} holds the character U+{ord(bad):04X} "
                f"(a control character or a surrogate); fix the {name} in the registry",
            )
    return None
