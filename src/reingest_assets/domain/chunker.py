"""Section-aware chunking of a normalized document into DocumentChunk_v2 chunks.

Chunk ids and UUIDs follow the original service (see DESIGN.md, "Chunk identity"): ``s{i}`` for a
section of a structured abstract that fits in one chunk, ``s{i}_{w}`` for the windows of one that
does not, ``w{w}`` for the windows of an unstructured abstract.

Token counts are cl100k_base counts of the exact chunk text, by tiktoken, or by riptoken when it
is installed (``domain/tokenizer.py``: same tokens, about twice the speed). Counts are computed
from parts: the tokenizer's pre-tokenizer never lets a piece cross a single space between two
non-whitespace characters, so ``count(header + " " + s1 + " " + s2) == count(header) +
count(" " + s1) + count(" " + s2)``. Each sentence is therefore encoded once, and a section that
fits in one chunk (the common case) costs a single encode of its chunk text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from reingest_assets.domain.document import Chunk, Document, Section
from reingest_assets.domain.failures import DocumentError
from reingest_assets.domain.ids import chunk_uuid
from reingest_assets.domain.limits import DEFAULT_LIMITS, DocumentLimits
from reingest_assets.domain.tokenizer import encode_ordinary, reference_encoding

# Bump whenever the chunks of an unchanged document can change: the ledger then rewrites them.
CHUNKER_VERSION = "chunker-2.0"
TOKENIZER = "cl100k_base"
MAX_AUTHORS_IN_META = 10

# Unicode White_Space: what the tokenizer's ``\s`` matches. Python's ``str.isspace`` also counts
# U+001C..U+001F, which the tokenizer treats as text, so strip and split with this set only.
_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
_WS = "[" + re.escape(_WHITESPACE) + "]"

# Where a text can be cut without changing its tokens: a single space between two non-whitespace
# characters (the tokenizer's pieces never cross one, see the module docstring), so the tokens
# of a long sentence's next window come from encoding a prefix of it, not all that is left (which
# made windowing quadratic in the sentence's length).
_SAFE_CUT = re.compile(rf"(?<!{_WS}) (?!{_WS})")
# A run this long with no whitespace at all (no real text has one) is cut into pieces this long:
# with no safe cut in it, every window would encode all of it.
_MAX_RUN_CHARS = 10_000
# A sentence this long (no real one is: a whole MEDLINE abstract is a few thousand characters)
# is cut at safe cuts into units of about this size: each window copies what is left of its
# unit, which would otherwise grow with the square of the sentence's length.
_MAX_UNIT_CHARS = 100_000
_LONG_RUN = re.compile(rf"[^{re.escape(_WHITESPACE)}]{{{_MAX_RUN_CHARS + 1},}}")
# Characters encoded per token wanted, before looking for a safe cut: tokens average about 4-5.
_PREFIX_CHARS_PER_TOKEN = 8

# Biomedical English runs at about 4-5 characters a token: a section longer than this many
# characters a token is not expected to fit in one chunk (a wrong guess only costs time).
_CHARS_PER_TOKEN_GUESS = 5

# A period after these does not end a sentence. Only lower-case and capitalized forms: an
# upper-case acronym (MS, CA, DR) does end one.
_ABBREVIATIONS = (
    "e.g.",
    "i.e.",
    "al.",
    "fig.",
    "figs.",
    "vs.",
    "cf.",
    "ca.",
    "approx.",
    "resp.",
    "incl.",
    "eq.",
    "ref.",
    "refs.",
    "suppl.",
    "vol.",
    "sp.",
    "spp.",
    "var.",
    "dr.",
    "prof.",
)
_ABBREVIATION_AT_END = re.compile(
    r"(?<!\w)(?:"
    + "|".join(re.escape(form) for a in _ABBREVIATIONS for form in sorted({a, a.capitalize()}))
    + r")\Z"
)
# Enough characters before a boundary to hold the longest abbreviation and the character before.
_ABBREVIATION_WINDOW = max(len(a) for a in _ABBREVIATIONS) + 1
# Where a sentence may end: . ! ? (maybe followed by a closing quote or bracket), whitespace, and a
# next sentence that starts like one (a capital or a digit, maybe behind an opening quote or
# bracket). Requiring whitespace keeps decimals ("3.5") whole. Group 1 is the whitespace between.
_SENTENCE_END = re.compile(rf"[.!?][\"'”’)\]]?({_WS}+)(?=[\"'“‘(\[]?[A-Z0-9])")


@dataclass(frozen=True, slots=True)
class ChunkerConfig:
    target_tokens: int = 325
    max_tokens: int = 450
    overlap_tokens: int = 50

    def __post_init__(self) -> None:
        # Headers take at most about half of max_tokens, which leaves room for text in every chunk.
        if self.max_tokens < 64:
            raise ValueError(f"max_tokens must be at least 64, got {self.max_tokens}")
        if not 0 < self.target_tokens <= self.max_tokens:
            raise ValueError("target_tokens must be in 1..max_tokens")
        if not 0 <= self.overlap_tokens < self.target_tokens:
            raise ValueError("overlap_tokens must be in 0..target_tokens-1")


def count_tokens(text: str) -> int:
    return len(encode_ordinary()(text))


def count_tokens_reference(text: str) -> int:
    """tiktoken's own count, to check ``count_tokens`` against."""
    return len(reference_encoding().encode_ordinary(text))


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, without surrounding whitespace, in order. A line break always
    ends a sentence."""
    sentences = []
    for line in text.split("\n"):
        line = line.strip(_WHITESPACE)
        start = 0
        for match in _SENTENCE_END.finditer(line):
            end = match.start(1)
            if _ABBREVIATION_AT_END.search(line[max(0, end - _ABBREVIATION_WINDOW) : end]):
                continue
            sentences.append(line[start:end])
            start = match.end(1)
        if line:
            sentences.append(line[start:])
    return sentences


def _bounded_units(sentences: list[str]) -> Iterator[str]:
    """The sentences, a run of more than ``_MAX_RUN_CHARS`` non-whitespace characters cut into
    pieces (so every stretch of text has a safe cut), and a piece of more than
    ``_MAX_UNIT_CHARS`` cut at safe cuts: each piece is a unit of its own."""
    for sentence in sentences:
        if len(sentence) <= _MAX_RUN_CHARS:
            yield sentence
        else:
            for piece in _cut_long_runs(sentence):
                yield from _cut_long_piece(piece)


def _cut_long_runs(sentence: str) -> Iterator[str]:
    start = 0
    for run in _LONG_RUN.finditer(sentence):
        if before := sentence[start : run.start()].strip(_WHITESPACE):
            yield before
        for i in range(run.start(), run.end(), _MAX_RUN_CHARS):
            yield sentence[i : min(i + _MAX_RUN_CHARS, run.end())]
        start = run.end()
    if rest := sentence[start:].strip(_WHITESPACE) if start else sentence:
        yield rest


def _cut_long_piece(piece: str) -> Iterator[str]:
    start = 0
    while len(piece) - start > _MAX_UNIT_CHARS:
        cut = _SAFE_CUT.search(piece, start + _MAX_UNIT_CHARS - _MAX_RUN_CHARS - 2)
        if cut is None:
            break
        yield piece[start : cut.start()]
        start = cut.end()
    yield piece[start:] if start else piece


def _token_prefix(text: str, tokens: int) -> str:
    """A prefix of ``text`` ending at a safe cut whose tokens are the first of ``text``'s and
    number more than ``tokens`` (or all of ``text``): the work is that of the prefix."""
    want = tokens * _PREFIX_CHARS_PER_TOKEN
    while want < len(text):
        cut = _SAFE_CUT.search(text, want, want + _MAX_RUN_CHARS + 2)
        if cut is None or text[cut.end() : cut.end() + 1] in _WHITESPACE:  # "" or cut by endpos
            return text
        prefix = text[: cut.start()]
        if count_tokens(prefix) > tokens:
            return prefix
        want *= 2
    return text


def _count_tokens_over(text: str, limit: int) -> int:
    """``count_tokens(text)`` when it is at most ``limit``; otherwise some count over ``limit``
    (of a prefix), which is all a window needs to know of a unit that does not fit."""
    if len(text) <= limit * _PREFIX_CHARS_PER_TOKEN:
        return count_tokens(text)
    prefix = _token_prefix(text, limit)
    return count_tokens(prefix) if len(prefix) < len(text) else count_tokens(text)


def chunk_document(
    doc: Document,
    config: ChunkerConfig = ChunkerConfig(),
    limits: DocumentLimits = DEFAULT_LIMITS,
) -> list[Chunk]:
    """The document's chunks. A document over ``limits`` (chunks, characters repeated in every
    chunk, seconds) raises a ``chunk`` DocumentError as soon as it is."""
    builder = _DocumentChunker(doc, config, limits)
    for index, section in enumerate(doc.sections):
        builder.add_section(index, section)
    if builder.chunks:
        return builder.chunks
    if not builder.title:
        raise DocumentError("chunk", "document has no title and no abstract text")
    return [builder.title_only_chunk()]


def _clip_to_tokens(text: str, limit: int) -> str:
    """The longest prefix of ``text`` of about ``limit`` tokens, cut at a token boundary."""
    if len(text.encode()) <= limit:  # a token is at least one byte: no need to encode
        return text
    encoding = reference_encoding()  # rare: tiktoken encodes and decodes
    tokens = encoding.encode_ordinary(text)
    if len(tokens) <= limit:
        return text
    byte_end = sum(len(token) for token in encoding.decode_tokens_bytes(tokens[:limit]))
    return text.encode()[:byte_end].decode("utf-8", "ignore").rstrip(_WHITESPACE)


def _split_long_sentence(
    sentence: str, budget: int, after_space: bool, overlap_tokens: int
) -> tuple[str, str]:
    """Split a sentence that exceeds ``budget`` on token boundaries: the longest head within the
    budget, and the rest starting ``overlap_tokens`` tokens before the cut.

    ``after_space``: the sentence follows a header in its chunk, so it is counted as
    ``" " + sentence``.
    """
    encoding = reference_encoding()  # rare: tiktoken encodes and decodes
    placed = " " + sentence if after_space else sentence
    lead = len(placed) - len(sentence)
    # The first tokens of the sentence, from a prefix: a window never needs more than budget.
    prefix = _token_prefix(placed, budget)
    data = prefix.encode()
    tokens = encoding.encode_ordinary(prefix)
    token_ends = list(accumulate(len(token) for token in encoding.decode_tokens_bytes(tokens)))

    def char_index(token_count: int) -> int:
        """Index into ``sentence`` of the token boundary after ``token_count`` tokens, moved back
        to a character boundary (a token can end inside a multibyte character)."""
        if token_count <= 0:
            return 0
        return len(data[: token_ends[token_count - 1]].decode("utf-8", "ignore")) - lead

    limit = budget
    while True:
        cut_tokens = limit
        cut = max(char_index(cut_tokens), 1)
        head = sentence[:cut].rstrip(_WHITESPACE)
        # A prefix cut inside a pre-tokenizer piece can encode to more tokens than its share.
        excess = count_tokens(placed[: lead + len(head)]) - budget
        if excess <= 0 or cut == 1:
            break
        limit -= excess
    rest_start = char_index(cut_tokens - overlap_tokens)
    if not 0 < rest_start <= cut:
        rest_start = cut
    return head, sentence[rest_start:].lstrip(_WHITESPACE)


class _DocumentChunker:
    """Builds the chunks of one document, section by section, in document order."""

    def __init__(self, doc: Document, config: ChunkerConfig, limits: DocumentLimits) -> None:
        self.doc = doc
        self.config = config
        self.limits = limits
        self.deadline = time.monotonic() + limits.max_chunk_seconds
        # What every chunk repeats of the document: its title and MeSH list.
        self.repeated_chars = len(doc.title) + sum(len(term) for term in doc.mesh_terms)
        self.structured = len(doc.sections) > 1
        # The header must leave room for text, so an absurd title or label is clipped there (the
        # full title stays in the chunk's ``title`` property).
        self.label_limit = config.max_tokens // 6
        self.title = _clip_to_tokens(doc.title.strip(_WHITESPACE), config.max_tokens // 3)
        self.quality_total = doc.quality_total
        self.header_tokens: dict[str, int] = {}
        self.chunks: list[Chunk] = []

    def add_section(self, index: int, section: Section) -> None:
        sentences = list(_bounded_units(split_sentences(section.text)))
        if not sentences:
            return
        label = section.label.strip(_WHITESPACE) if section.label else ""
        label = _clip_to_tokens(label, self.label_limit) if label else ""
        header = self._header(label)
        body = " ".join(sentences)
        spaced = None
        if len(body) <= _CHARS_PER_TOKEN_GUESS * self.config.max_tokens:
            tokens = count_tokens(_compose(header, body))
        else:
            # Most likely too long for one chunk: count the sentences, which the windows need.
            spaced = [count_tokens(" " + sentence) for sentence in sentences]
            tokens = self._opening_tokens(header, sentences[0], spaced[0]) + sum(spaced[1:])
        if tokens <= self.config.max_tokens:
            chunk_id = f"s{index}" if self.structured else "w0"
            self._emit(chunk_id, section, index, _compose(header, body), tokens, len(sentences))
        else:
            if spaced is None:
                spaced = [count_tokens(" " + sentence) for sentence in sentences]
            self._add_windows(index, section, label, sentences, spaced)

    def title_only_chunk(self) -> Chunk:
        text = f"[Title] {self.title}"
        return self._chunk("w0", None, None, text, count_tokens(text), 0)

    def _header(self, label: str) -> str:
        lines = []
        if not self.chunks and self.title:
            lines.append(f"[Title] {self.title}")
        if label:
            lines.append(f"[Section] {label}")
        return "\n".join(lines) + "\n[Text]" if lines else ""

    def _header_tokens(self, header: str) -> int:
        tokens = self.header_tokens.get(header)
        if tokens is None:
            tokens = self.header_tokens[header] = count_tokens(header) if header else 0
        return tokens

    def _opening_tokens(self, header: str, unit: str, unit_spaced: int) -> int:
        """Tokens of a chunk's header and first unit (which has no space before it when there is
        no header)."""
        if header:
            return self._header_tokens(header) + unit_spaced
        return _count_tokens_over(unit, self.config.max_tokens)

    def _add_windows(
        self, index: int, section: Section, label: str, units: list[str], spaced: list[int]
    ) -> None:
        """``units``: the sentences (a too long one is replaced by its pieces in place);
        ``spaced``: the tokens of each after a space (inside a chunk or after a header)."""
        config = self.config
        window = 0
        start = 0
        while start < len(units):
            header = self._header(label)
            total = self._opening_tokens(header, units[start], spaced[start])
            split = total > config.max_tokens
            if split:
                head, rest = _split_long_sentence(
                    units[start],
                    config.max_tokens - self._header_tokens(header),
                    after_space=bool(header),
                    overlap_tokens=config.overlap_tokens,
                )
                units[start : start + 1] = [head, rest]
                spaced[start : start + 1] = [
                    count_tokens(" " + head),
                    _count_tokens_over(" " + rest, config.max_tokens),
                ]
                total = self._opening_tokens(header, head, spaced[start])
                end = start + 1
            else:
                end = start + 1
                while (
                    end < len(units)
                    and total < config.target_tokens
                    and total + spaced[end] <= config.max_tokens
                ):
                    total += spaced[end]
                    end += 1
            self._emit(
                f"s{index}_{window}" if self.structured else f"w{window}",
                section,
                index,
                _compose(header, " ".join(units[start:end])),
                total,
                end - start,
            )
            if end == len(units):
                return
            # The rest of a split sentence already starts with the overlap.
            start = end if split else self._overlap_start(units, spaced, start, end, label)
            window += 1

    def _overlap_start(
        self, units: list[str], spaced: list[int], start: int, end: int, label: str
    ) -> int:
        """Where the window after ``units[start:end]`` starts: at the whole trailing sentences
        that fit in the overlap budget, if the next window still has room for a new sentence."""
        overlap_start = end
        overlap = 0
        while (
            overlap_start - 1 > start
            and overlap + spaced[overlap_start - 1] <= self.config.overlap_tokens
        ):
            overlap_start -= 1
            overlap += spaced[overlap_start]
        if overlap_start == end:
            return end
        # The header of the next window (no title: the first chunk is out by now).
        header = self._header(label)
        needed = (
            self._opening_tokens(header, units[overlap_start], spaced[overlap_start])
            + overlap
            - spaced[overlap_start]
            + spaced[end]
        )
        return overlap_start if needed <= self.config.max_tokens else end

    def _emit(
        self, chunk_id: str, section: Section, index: int, text: str, tokens: int, n: int
    ) -> None:
        section_index = index if self.structured else None
        self.chunks.append(self._chunk(chunk_id, section.label, section_index, text, tokens, n))

    def _chunk(
        self,
        chunk_id: str,
        label: str | None,
        section_index: int | None,
        text: str,
        tokens: int,
        n_sentences: int,
    ) -> Chunk:
        doc = self.doc
        config = self.config
        self._check_budget()
        meta: dict[str, Any] = {
            "chunk_id": chunk_id,
            "chunk_index": len(self.chunks),
            "chunker_version": CHUNKER_VERSION,
            "tokenizer": TOKENIZER,
            "target_tokens": config.target_tokens,
            "max_tokens": config.max_tokens,
            "overlap_tokens": config.overlap_tokens,
            "section_index": section_index,
            "src": {
                "pubmed": {
                    "journal": doc.journal,
                    "mesh_terms": list(doc.mesh_terms),
                    "quality_total": self.quality_total,
                    "doi": doc.doi,
                    "pmc_id": doc.pmc_id,
                    "language": doc.language,
                    "authors": list(doc.authors[:MAX_AUTHORS_IN_META]),
                }
            },
        }
        return Chunk(
            uuid=chunk_uuid(doc.uid, chunk_id),
            chunk_id=chunk_id,
            parent_uid=doc.uid,
            source=doc.source,
            title=doc.title,
            text=text,
            section=label,
            published_at=doc.published_at,
            year=doc.year,
            tokens=tokens,
            n_sentences=n_sentences,
            quality_total=self.quality_total,
            meta=meta,
        )

    def _check_budget(self) -> None:
        """Before each chunk: refuse the document once it passes a limit."""
        limits = self.limits
        count = len(self.chunks) + 1
        if count > limits.max_chunks:
            raise limits.over(
                "chunk", "max_chunks", f"document makes more than {limits.max_chunks:,} chunks"
            )
        if count * self.repeated_chars > limits.max_repeated_chars:
            raise limits.over(
                "chunk",
                "max_repeated_chars",
                f"{count:,} chunks would repeat its title and MeSH terms "
                f"({self.repeated_chars:,} characters) {count * self.repeated_chars:,} "
                "characters in all",
            )
        if time.monotonic() > self.deadline:
            raise limits.over(
                "chunk",
                "max_chunk_seconds",
                f"chunking took more than {limits.max_chunk_seconds} s",
            )


def _compose(header: str, body: str) -> str:
    return f"{header} {body}" if header else body
