"""In-memory state of the fake Weaviate: schema, aliases, objects, and the conversions between
the wire formats (gRPC properties, filters) and plain Python values.

It mimics the server's observable behaviour that the store relies on: upsert by id, schema
defaults filled in on create, property validation (auto-schema on or off), named-vector
validation, vector dimensions fixed by the first vectors, alias resolution and case rules,
RFC3339 dates, QUERY_MAXIMUM_RESULTS (10,000) capping searches and deletes. docs/weaviate.md
tables which server source each behaviour follows.
"""

from __future__ import annotations

import copy
import re
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from google.protobuf.json_format import MessageToDict
from weaviate.proto.v1 import base_pb2, batch_pb2, properties_pb2

QUERY_MAXIMUM_RESULTS = 10_000

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

_HNSW_DEFAULTS: dict[str, Any] = {
    "skip": False,
    "cleanupIntervalSeconds": 300,
    "maxConnections": 32,
    "efConstruction": 128,
    "ef": -1,
    "dynamicEfMin": 100,
    "dynamicEfMax": 500,
    "dynamicEfFactor": 8,
    "vectorCacheMaxObjects": 1_000_000_000_000,
    "flatSearchCutoff": 40_000,
    "distance": "cosine",
    "filterStrategy": "sweeping",
    "pq": {"enabled": False},
    "bq": {"enabled": False},
    "sq": {"enabled": False},
    "rq": {"enabled": False},
    "multivector": {"enabled": False, "aggregation": "maxSim"},
}

_CLASS_DEFAULTS: dict[str, Any] = {
    "invertedIndexConfig": {
        "bm25": {"b": 0.75, "k1": 1.2},
        "cleanupIntervalSeconds": 60,
        "stopwords": {"preset": "en", "additions": None, "removals": None},
        "usingBlockMaxWAND": True,
    },
    "multiTenancyConfig": {
        "enabled": False,
        "autoTenantCreation": False,
        "autoTenantActivation": False,
    },
    "replicationConfig": {
        "factor": 1,
        "asyncEnabled": False,
        "deletionStrategy": "NoAutomatedResolution",
    },
    "shardingConfig": {
        "virtualPerPhysical": 128,
        "desiredCount": 1,
        "actualCount": 1,
        "desiredVirtualCount": 128,
        "actualVirtualCount": 128,
        "key": "_id",
        "strategy": "hash",
        "function": "murmur3",
    },
}

_TEXT_TYPES = {"text", "text[]"}


class WeaviateError(Exception):
    """An error the real server would answer with (HTTP 422 / gRPC INVALID_ARGUMENT)."""


def _normalize_property(prop: dict[str, Any], *, nested: bool) -> dict[str, Any]:
    out = dict(prop)
    data_type = out["dataType"][0]
    is_text = data_type in _TEXT_TYPES
    out.setdefault("indexFilterable", True)
    out.setdefault("indexSearchable", is_text)
    if not nested:
        out.setdefault("indexRangeFilters", False)
    if is_text:
        out.setdefault("tokenization", "word")
    if "nestedProperties" in out:
        out["nestedProperties"] = [
            _normalize_property(p, nested=True) for p in out["nestedProperties"]
        ]
    elif data_type in {"object", "object[]"}:
        raise WeaviateError(f"property '{out['name']}': object data type requires nestedProperties")
    return out


def normalize_class(body: dict[str, Any]) -> dict[str, Any]:
    """The class as GET /v1/schema/{name} returns it: the server fills every default in."""
    cls = copy.deepcopy(body)
    name = cls.get("class", "")
    if not re.fullmatch(r"[A-Z][_0-9A-Za-z]*", name):
        raise WeaviateError(f"'{name}' is not a valid class name")
    cls["properties"] = [_normalize_property(p, nested=False) for p in cls.get("properties") or []]
    for key, value in _CLASS_DEFAULTS.items():
        cls.setdefault(key, copy.deepcopy(value))
    for vector in (cls.get("vectorConfig") or {}).values():
        vector.setdefault("vectorIndexType", "hnsw")
        vector["vectorIndexConfig"] = {
            **copy.deepcopy(_HNSW_DEFAULTS),
            **(vector.get("vectorIndexConfig") or {}),
        }
    if "vectorConfig" not in cls:
        cls.setdefault("vectorizer", "none")
        cls.setdefault("vectorIndexType", "hnsw")
        cls["vectorIndexConfig"] = {
            **copy.deepcopy(_HNSW_DEFAULTS),
            **(cls.get("vectorIndexConfig") or {}),
        }
    return cls


@dataclass
class StoredObject:
    uuid: str
    properties: dict[str, Any]
    vectors: dict[str, list[float]]
    seq: int  # insertion order: what a filtered search without a cursor is ordered by
    created_ms: int
    updated_ms: int


@dataclass
class PreparedObject:
    """A batch object that passed validation, waiting for its vectors."""

    collection: Collection
    uuid: str
    properties: dict[str, Any]
    vectors: dict[str, list[float]]


@dataclass
class Collection:
    schema: dict[str, Any]
    objects: dict[str, StoredObject] = field(default_factory=dict)
    dimensions: dict[str, int] = field(default_factory=dict)

    @property
    def props(self) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in self.schema["properties"]}

    @property
    def vector_modules(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Named vector -> (vectorizer module, its module config); "none" when self-provided."""
        out = {}
        for name, config in (self.schema.get("vectorConfig") or {}).items():
            ((module, settings),) = (config.get("vectorizer") or {"none": {}}).items()
            out[name] = (module, settings or {})
        return out


def upper_first(name: str) -> str:
    """entities/schema: class and alias names are stored with an upper-case first letter."""
    return name[:1].upper() + name[1:]


class State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.collections: dict[str, Collection] = {}
        self.aliases: dict[str, str] = {}
        self._seq = 0

    # --- schema and aliases ------------------------------------------------------------------

    def alias(self, name: str) -> str | None:
        """The stored spelling of alias ``name``: usecases/schema/alias.go compares alias names
        case-insensitively."""
        wanted = name.lower()
        return next((a for a in self.aliases if a.lower() == wanted), None)

    def resolve(self, name: str) -> str:
        alias = self.alias(name)
        return self.aliases[alias] if alias is not None else upper_first(name)

    def collection(self, name: str) -> Collection:
        resolved = self.resolve(name)
        if resolved not in self.collections:
            raise WeaviateError(f"could not find class {name} in schema")
        return self.collections[resolved]

    def create_class(self, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "class": upper_first(body.get("class", ""))}
        cls = normalize_class(body)
        with self.lock:
            name = cls["class"]
            if name.lower() in {n.lower() for n in self.collections}:
                raise WeaviateError(f"class name {name} already exists")
            if self.alias(name) is not None:
                raise WeaviateError(f"class name {name} already used as an alias")
            self.collections[name] = Collection(schema=cls)
        return cls

    def create_alias(self, alias: str, target: str) -> str:
        alias, target = upper_first(alias), upper_first(target)
        with self.lock:
            if self.alias(alias) is not None:
                raise WeaviateError(f"alias {alias} already exists")
            if alias.lower() in {n.lower() for n in self.collections}:
                raise WeaviateError(f"create alias: class {alias} already exists")
            if target not in self.collections:
                raise WeaviateError(f"create alias: class {target} does not exist")
            self.aliases[alias] = target
        return alias

    # --- writes ----------------------------------------------------------------------------

    def prepare_object(self, obj: batch_pb2.BatchObject, *, auto_schema: bool) -> PreparedObject:
        """Validate one batch object (properties, then vectors), as usecases/objects/validation
        does before anything is written."""
        with self.lock:
            coll = self.collection(obj.collection)
            props = decode_properties(obj.properties)
            extend = coll if auto_schema else None
            validated = _validate(props, coll.props, coll.schema["class"], extend)
            return PreparedObject(coll, obj.uuid, validated, _validated_vectors(obj, coll))

    def put_object(self, item: PreparedObject) -> None:
        with self.lock:
            coll = item.collection
            for name, vec in item.vectors.items():
                # adapters/repos/db/vector/hnsw/insert.go: the first vector fixes the index's
                # dimensions; any other length is refused.
                expected = coll.dimensions.setdefault(name, len(vec))
                if expected != len(vec):
                    raise WeaviateError(
                        f"new node has a vector with length {len(vec)}. "
                        f"Existing nodes have vectors with length {expected}"
                    )
            self._seq += 1
            now = int(time.time() * 1000)
            previous = coll.objects.get(item.uuid)
            seq, created = (previous.seq, previous.created_ms) if previous else (self._seq, now)
            coll.objects[item.uuid] = StoredObject(
                item.uuid, item.properties, item.vectors, seq, created, now
            )

    def matching(self, coll: Collection, filters: base_pb2.Filters | None) -> list[StoredObject]:
        objects = sorted(coll.objects.values(), key=lambda o: o.seq)
        if filters is None:
            return objects
        return [o for o in objects if evaluate(filters, o)]


# --- property decoding (BatchObject.Properties -> dict) -----------------------------------------


def _decode_value_group(group: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict(MessageToDict(group.non_ref_properties))
    for p in group.text_array_properties:
        out[p.prop_name] = list(p.values)
    for p in group.int_array_properties:
        out[p.prop_name] = list(p.values)
    for p in group.boolean_array_properties:
        out[p.prop_name] = list(p.values)
    for p in group.number_array_properties:
        raw = p.values_bytes
        out[p.prop_name] = list(struct.unpack(f"{len(raw) // 8}d", raw)) if raw else list(p.values)
    for p in group.object_properties:
        out[p.prop_name] = _decode_value_group(p.value)
    for p in group.object_array_properties:
        out[p.prop_name] = [_decode_value_group(v) for v in p.values]
    for name in group.empty_list_props:
        out[name] = []
    return out


def decode_properties(props: batch_pb2.BatchObject.Properties) -> dict[str, Any]:
    return _decode_value_group(props)


def _validated_vectors(obj: batch_pb2.BatchObject, coll: Collection) -> dict[str, list[float]]:
    """usecases/objects/validation/vector_validation.go: named vectors must be configured; a
    single vector goes to the only named vector, and is refused when there are several."""
    cls = coll.schema["class"]
    configured = list(coll.schema.get("vectorConfig") or {})
    single = (
        list(struct.unpack(f"<{len(obj.vector_bytes) // 4}f", obj.vector_bytes))
        if obj.vector_bytes
        else None
    )
    named = {
        vec.name: list(struct.unpack(f"<{len(vec.vector_bytes) // 4}f", vec.vector_bytes))
        for vec in obj.vectors
    }
    if not configured:  # a legacy collection: one unnamed vector
        if named:
            raise WeaviateError(
                f"collection {cls} is configured without multiple named vectors, but received "
                f"named vectors: {sorted(named)}"
            )
        return {"default": single} if single is not None else {}
    if single is not None:
        if len(configured) > 1:
            raise WeaviateError(
                f"collection {cls} is configured with multiple named vectors {configured}, but "
                "received a single vector"
            )
        named[configured[0]] = single
    for name in named:
        if name not in configured:
            raise WeaviateError(f"collection {cls} does not have configuration for vector {name}")
    return named


def _check_scalar(value: Any, data_type: str, where: str) -> Any:
    if data_type == "text":
        if not isinstance(value, str):
            raise WeaviateError(f"invalid text property '{where}': requires a string")
        return value
    if data_type == "int":
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise WeaviateError(f"invalid integer property '{where}': got {value!r}")
        return int(value)
    if data_type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise WeaviateError(f"invalid number property '{where}': got {value!r}")
        return float(value)
    if data_type == "boolean":
        if not isinstance(value, bool):
            raise WeaviateError(f"invalid boolean property '{where}': got {value!r}")
        return value
    if data_type == "date":
        if not isinstance(value, str) or not _RFC3339.match(value):
            raise WeaviateError(
                f"invalid date property '{where}': requires a string with a RFC3339 formatted "
                f"date, but the given value is '{value}'"
            )
        return value
    raise WeaviateError(f"data type {data_type} is not supported by the fake server")


def _inferred_property(name: str, value: Any) -> dict[str, Any]:
    """usecases/objects/auto_schema.go: the data type a value suggests (numbers become
    ``number``, AUTOSCHEMA_DEFAULT_NUMBER's default)."""
    if isinstance(value, dict):
        nested = [_inferred_property(k, v) for k, v in value.items() if v is not None]
        return {"name": name, "dataType": ["object"], "nestedProperties": nested}
    if isinstance(value, list):
        element = _inferred_property(name, value[0]) if value else {"dataType": ["text"]}
        return {"name": name, "dataType": [element["dataType"][0] + "[]"]}
    if isinstance(value, bool):
        data_type = "boolean"
    elif isinstance(value, int | float):
        data_type = "number"
    elif isinstance(value, str) and _RFC3339.match(value):
        data_type = "date"
    else:
        data_type = "text"
    return {"name": name, "dataType": [data_type]}


def _validate(
    props: dict[str, Any],
    schema: dict[str, dict[str, Any]],
    cls: str,
    extend: Collection | None = None,
) -> dict[str, Any]:
    """``extend``: the collection auto-schema adds unknown top-level properties to."""
    out: dict[str, Any] = {}
    for name, value in props.items():
        if name not in schema and extend is not None and value is not None:
            added = _normalize_property(_inferred_property(name, value), nested=False)
            extend.schema["properties"].append(added)
            schema = extend.props
        if name not in schema:
            raise WeaviateError(
                f"no such prop with name '{name}' found in class '{cls}' in the schema. "
                "Check your schema files for which properties in this class are available"
            )
        if value is None:
            continue  # the server stores a null as an absent property
        prop = schema[name]
        data_type = prop["dataType"][0]
        if data_type == "object":
            if not isinstance(value, dict):
                raise WeaviateError(f"invalid object property '{name}': got {value!r}")
            nested = {p["name"]: p for p in prop["nestedProperties"]}
            out[name] = _validate(value, nested, cls)
        elif data_type == "object[]":
            nested = {p["name"]: p for p in prop["nestedProperties"]}
            out[name] = [_validate(v, nested, cls) for v in value]
        elif data_type.endswith("[]"):
            if not isinstance(value, list):
                raise WeaviateError(f"invalid {data_type} property '{name}': got {value!r}")
            out[name] = [_check_scalar(v, data_type[:-2], name) for v in value]
        else:
            out[name] = _check_scalar(value, data_type, name)
    return out


# --- property encoding (dict -> properties_pb2.Properties) --------------------------------------


def encode_properties(
    values: dict[str, Any], schema: Iterable[dict[str, Any]], wanted: set[str] | None
) -> properties_pb2.Properties:
    fields: dict[str, properties_pb2.Value] = {}
    for prop in schema:
        name = prop["name"]
        if (wanted is not None and name not in wanted) or name not in values:
            continue
        fields[name] = _encode_value(values[name], prop)
    return properties_pb2.Properties(fields=fields)


def _encode_value(value: Any, prop: dict[str, Any]) -> properties_pb2.Value:
    data_type = prop["dataType"][0]
    if data_type == "object":
        return properties_pb2.Value(
            object_value=encode_properties(value, prop["nestedProperties"], None)
        )
    if data_type == "object[]":
        return properties_pb2.Value(
            list_value=properties_pb2.ListValue(
                object_values=properties_pb2.ObjectValues(
                    values=[encode_properties(v, prop["nestedProperties"], None) for v in value]
                )
            )
        )
    if data_type == "text[]":
        return properties_pb2.Value(
            list_value=properties_pb2.ListValue(text_values=properties_pb2.TextValues(values=value))
        )
    if data_type == "int[]":
        packed = struct.pack(f"{len(value)}q", *value)
        return properties_pb2.Value(
            list_value=properties_pb2.ListValue(int_values=properties_pb2.IntValues(values=packed))
        )
    if data_type == "number[]":
        packed = struct.pack(f"{len(value)}d", *value)
        return properties_pb2.Value(
            list_value=properties_pb2.ListValue(
                number_values=properties_pb2.NumberValues(values=packed)
            )
        )
    if data_type == "text":
        return properties_pb2.Value(text_value=value)
    if data_type == "int":
        return properties_pb2.Value(int_value=value)
    if data_type == "number":
        return properties_pb2.Value(number_value=value)
    if data_type == "boolean":
        return properties_pb2.Value(bool_value=value)
    if data_type == "date":
        return properties_pb2.Value(date_value=value)
    raise WeaviateError(f"data type {data_type} is not supported by the fake server")


# --- filters ------------------------------------------------------------------------------------

_F = base_pb2.Filters


def _filter_value(f: base_pb2.Filters) -> Any:
    kind = f.WhichOneof("test_value")
    if kind is None:
        return None
    value = getattr(f, kind)
    if kind.endswith("_array"):
        return list(value.values)
    return value


def _comparable(value: Any) -> Any:
    if isinstance(value, str) and _RFC3339.match(value):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def evaluate(f: base_pb2.Filters, obj: StoredObject) -> bool:
    op = f.operator
    if op == _F.OPERATOR_AND:
        return all(evaluate(sub, obj) for sub in f.filters)
    if op == _F.OPERATOR_OR:
        return any(evaluate(sub, obj) for sub in f.filters)
    if op == _F.OPERATOR_NOT:
        return not any(evaluate(sub, obj) for sub in f.filters)
    path = f.target.property if f.HasField("target") else (f.on[0] if f.on else "")
    if not path:
        raise WeaviateError("filter without a target property")
    actual = obj.uuid if path in {"_id", "id"} else obj.properties.get(path)
    expected = _filter_value(f)
    if op == _F.OPERATOR_IS_NULL:
        return (actual is None) == bool(expected)
    if actual is None:
        return op in {_F.OPERATOR_NOT_EQUAL, _F.OPERATOR_CONTAINS_NONE}
    actual_values = actual if isinstance(actual, list) else [actual]
    if op == _F.OPERATOR_CONTAINS_ANY:
        return any(v in expected for v in actual_values)
    if op == _F.OPERATOR_CONTAINS_ALL:
        return all(v in actual_values for v in expected)
    if op == _F.OPERATOR_CONTAINS_NONE:
        return not any(v in expected for v in actual_values)
    if op == _F.OPERATOR_EQUAL:
        return actual == expected or (isinstance(actual, list) and expected in actual)
    if op == _F.OPERATOR_NOT_EQUAL:
        return actual != expected
    a, e = _comparable(actual), _comparable(expected)
    if op == _F.OPERATOR_GREATER_THAN:
        return bool(a > e)
    if op == _F.OPERATOR_GREATER_THAN_EQUAL:
        return bool(a >= e)
    if op == _F.OPERATOR_LESS_THAN:
        return bool(a < e)
    if op == _F.OPERATOR_LESS_THAN_EQUAL:
        return bool(a <= e)
    raise WeaviateError(f"filter operator {_F.Operator.Name(op)} is not supported by the fake")
