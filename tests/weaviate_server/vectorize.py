"""Server-side vectorization of the fake: ``text2vec-openai`` named vectors are filled from the
stand-in OpenAI endpoint, with the key the client sent as ``X-OpenAI-Api-Key``.

Mirrors usecases/objects/batch_add.go (the batch's objects vectorized together, an error given
to every object of the request) and usecases/modulecomponents/clients/openai/openai.go (the key
from the request header, the texts of the errors). The text sent is the values of the vector's
source properties in name order: the real module also lower-cases it and can prepend the class
and property names, which changes nothing the store observes.
"""

from __future__ import annotations

from typing import Any

import httpx

from .state import PreparedObject

MODULE = "text2vec-openai"
NO_KEY = (
    "API Key: no api key found neither in request header: X-Openai-Api-Key nor in environment "
    "variable under OPENAI_APIKEY"
)


def _text(properties: dict[str, Any], source: list[str] | None) -> str:
    names = sorted(source or [n for n, v in properties.items() if isinstance(v, str)])
    return " ".join(str(properties[n]) for n in names if properties.get(n) is not None)


def _error(response: httpx.Response) -> str:
    message = f"connection to: OpenAI API failed with status: {response.status_code}"
    request_id = response.headers.get("x-request-id")
    if request_id:
        message += f" request-id: {request_id}"
    try:
        detail = response.json().get("error")
    except ValueError:
        detail = None
    if detail:
        message += f" error: {detail.get('message')}"
    return message


def vectorize(
    prepared: dict[int, PreparedObject], metadata: dict[str, str], openai_url: str
) -> dict[int, str]:
    """Fill the missing text2vec-openai vectors of ``prepared``; returns ``{index: error}``."""
    groups: dict[tuple[str, str], list[int]] = {}
    for index, item in prepared.items():
        for name, (module, _) in item.collection.vector_modules.items():
            if module == MODULE and name not in item.vectors:
                groups.setdefault((item.collection.schema["class"], name), []).append(index)
    errors: dict[int, str] = {}
    key = metadata.get("x-openai-api-key")
    for (_, name), indexes in groups.items():
        _, settings = prepared[indexes[0]].collection.vector_modules[name]
        if not key:
            errors.update(dict.fromkeys(indexes, NO_KEY))
            continue
        body: dict[str, Any] = {
            "input": [_text(prepared[i].properties, settings.get("properties")) for i in indexes],
            "model": settings.get("model", "text-embedding-3-small"),
        }
        if settings.get("dimensions"):
            body["dimensions"] = settings["dimensions"]
        response = httpx.post(
            f"{openai_url}/v1/embeddings",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        if response.status_code != 200:
            errors.update(dict.fromkeys(indexes, _error(response)))
            continue
        for index, item in zip(indexes, response.json()["data"], strict=True):
            prepared[index].vectors[name] = item["embedding"]
    return errors
