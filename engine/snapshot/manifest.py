"""The bundle manifest: its schema version, how it is built and serialized, and how it is checked.

``SCHEMA_VERSION`` is defined here and nowhere else: new bundles are written with it, and this tool
reads every version from ``OLDEST_READABLE`` up to it (version 1: one ``embeddings.parquet``;
version 2: ``embeddings/part-NNNNN.parquet`` shards listed in the manifest). The JSON Schema ships
in the package as ``engine/schemas/manifest.schema.json`` (one branch per version);
:func:`schema_problems` validates against it and :func:`check_version` refuses manifests written
by a newer tool.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from engine import __version__
from engine.errors import BundleError, UnsupportedSchemaVersion

from . import layout

SCHEMA_VERSION = 2
OLDEST_READABLE = 1
HASH_ALGORITHM = "sha256"
TOOL = "procos-knowledge"
MAX_MANIFEST_BYTES = 1 << 20


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The manifest's JSON Schema (draft 2020-12), read from the installed package."""
    text = resources.files("engine").joinpath("schemas/manifest.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def build(*, snapshot_id: str, created_utc: str, source_env: str, source_uri: str, backend: str,
          record_count: int, dimensions: int, metric: str, index_type: str, index_params: dict[str, int],
          content_hash: str, compression_level: int, rows_per_group: int, shards: list[dict[str, Any]],
          shard_rows: int, artifact_paths: list[str], logs_truncated: bool,
          vector_encoding: str = "plain") -> dict[str, Any]:
    """A current-version manifest dict; artifact counters are derived from ``artifact_paths``.

    ``shards`` are ``{"file", "rows", "first_id", "last_id"}`` in file order. ``vector_encoding``
    other than ``plain`` is recorded as ``embeddings.vector_encoding`` (an optional property: readers
    that predate it read such shards all the same, Parquet names each column's encoding itself).
    """
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "snapshot_id": snapshot_id,
        "created_utc": created_utc,
        "tool": TOOL,
        "tool_version": __version__,
        "source_env": source_env,
        "source_uri": source_uri,
        "vector_backend": backend,
        "record_count": int(record_count),
        "dimensions": int(dimensions),
        "metric": metric,
        "index": {"type": index_type, "params": {k: int(v) for k, v in sorted(index_params.items())}},
        "hash_algorithm": HASH_ALGORITHM,
        "content_hash": content_hash,
        "embeddings": {"format": "parquet", "compression": "zstd",
                       "compression_level": int(compression_level), "rows_per_group": int(rows_per_group),
                       "shard_rows": int(shard_rows),
                       "shards": [{"file": s["file"], "rows": int(s["rows"]), "first_id": s["first_id"],
                                   "last_id": s["last_id"]} for s in shards],
                       **({"vector_encoding": vector_encoding} if vector_encoding != "plain" else {})},
        "faiss_index": layout.FAISS_INDEX if backend == "faiss" else None,
        "logs_truncated": bool(logs_truncated),
    }
    manifest.update(artifact_counts(artifact_paths))
    return manifest


KINDS = ("full", "delta")


def version_of(manifest: dict[str, Any]) -> int:
    """The manifest's schema_version (call after :func:`check_version`)."""
    return int(manifest["schema_version"])


def embedding_files(manifest: dict[str, Any]) -> list[str]:
    """Bundle-relative paths of the files holding the records, in row order, as the manifest names them.

    Version 1: ``embeddings.parquet``; version 2: every shard of ``embeddings.shards``. A shard entry
    that is not a safe shard name is left out (the verifier reports it).
    """
    if manifest.get("schema_version") == 1:
        return [layout.EMBEDDINGS]
    section = manifest.get("embeddings")
    shards = section.get("shards") if isinstance(section, dict) else None
    if not isinstance(shards, list):
        return []
    return [s["file"] for s in shards if isinstance(s, dict) and isinstance(s.get("file"), str)
            and layout.shard_index(s["file"]) is not None]


def kind_of(manifest: dict[str, Any]) -> str:
    """``full`` or ``delta``; bundles written before deltas existed have no ``kind`` and are full."""
    return str(manifest.get("kind", "full"))


def lineage_fields(state: dict[str, Any], artifact_files: dict[str, str]) -> dict[str, Any]:
    """The manifest's lineage properties from an export's step state (see docs/snapshot-format.md).

    Every bundle gets ``kind`` and ``artifacts_state`` (``{path: sha256}`` of the store's whole
    artifact set after this bundle), plus ``sequence`` when the export recorded the store's change
    sequence, and ``store_id`` (the source store's id). A delta also gets ``parent``, ``base_sequence``, ``changes`` and ``removed_artifacts``.
    """
    delta = state.get("delta")
    artifacts_state = delta["artifacts_state"] if delta else artifact_files
    out: dict[str, Any] = {"kind": "delta" if delta else "full",
                           "artifacts_state": {p: artifacts_state[p] for p in sorted(artifacts_state)}}
    if state.get("sequence") is not None:
        out["sequence"] = int(state["sequence"])
    if state.get("store_id"):
        out["store_id"] = str(state["store_id"])
    if state.get("as_of_utc"):
        out["as_of_utc"] = str(state["as_of_utc"])
    if delta:
        out.update(parent=dict(delta["parent"]), base_sequence=int(delta["base_sequence"]),
                   changes={"file": layout.CHANGES, "upserts": int(delta["changes"]["upserts"]),
                            "deletes": int(delta["changes"]["deletes"])},
                   removed_artifacts=sorted(delta["removed_artifacts"]))
    return out


def artifact_counts(paths: list[str]) -> dict[str, int]:
    """``{"bpmn_count": n, "prompt_count": n, ...}`` for the given bundle-relative paths."""
    counts = dict.fromkeys(layout.ARTIFACT_COUNTERS.values(), 0)
    for path in paths:
        kind = layout.artifact_kind(path)
        if kind is not None:
            counts[layout.ARTIFACT_COUNTERS[kind]] += 1
    return counts


def dumps(manifest: dict[str, Any]) -> bytes:
    """Canonical bytes of a manifest: sorted keys, two-space indent, UTF-8, trailing newline."""
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def loads(data: bytes) -> dict[str, Any]:
    """Parse manifest bytes; raise BundleError when they are not one JSON object."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise BundleError(f"manifest.json is {len(data)} bytes, more than the {MAX_MANIFEST_BYTES} allowed")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"manifest.json is not valid JSON ({exc})",
                          hint="the bundle is damaged; export it again") from exc
    if not isinstance(value, dict):
        raise BundleError("manifest.json is not a JSON object")
    return value


def version_problem(manifest: dict[str, Any]) -> str | None:
    """Why this tool cannot read the manifest's schema_version, or None when it can."""
    version = manifest.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        return f"schema_version is {version!r}, not an integer"
    if version > SCHEMA_VERSION:
        return (f"schema_version {version} is newer than this tool supports ({SCHEMA_VERSION}); "
                f"upgrade {TOOL} to read this bundle")
    if version < OLDEST_READABLE:
        return f"schema_version {version} is not a known version"
    return None


def check_version(manifest: dict[str, Any]) -> None:
    """Raise UnsupportedSchemaVersion when the manifest's schema_version is not one this tool reads."""
    problem = version_problem(manifest)
    if problem:
        raise UnsupportedSchemaVersion(f"manifest.json: {problem}",
                                       hint=f"upgrade {TOOL} (pip install -U {TOOL})")


def schema_problems(manifest: dict[str, Any]) -> list[str]:
    """Every violation of the JSON Schema, as ``<json path>: <message>`` strings (empty when valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    problems = []
    for error in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path))):
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        problems.append(f"{where}: {error.message}")
    return problems
