"""Snapshot bundles (schema_version 2, version 1 still read): export, pack, verify, inspect, migrate, import.

The public functions, each a thin entry point the CLI, the BPMN scripts and the API call:

- :func:`export_snapshot` (or step by step: :func:`start_bundle`, :func:`dump_embeddings`,
  :func:`package_artifacts`, :func:`finish_bundle`, :func:`abort_bundle`)
- :func:`pack_bundle`, :func:`verify_bundle`, :func:`inspect_bundle`
- :func:`import_snapshot`, :func:`plan_import`, :func:`open_target`
- :func:`export_delta`, :func:`import_chain`, :func:`plan_chain`, :func:`check_catalog` (deltas, lineage)
- :func:`migrate_v1_to_v2`, :func:`migrate_to_current` (older bundles; import migrates on its own)
- :func:`sign_bundle`, :func:`check_signature` (gpg), :func:`encrypt_bundle` (age), :class:`BundleAccess`

Heavy libraries (pyarrow, FAISS, zstandard, jsonschema) are imported only when a function needs them.
"""

from __future__ import annotations

from typing import Any

from .manifest import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION", "DeltaResult", "ExportResult", "check_catalog", "export_delta", "import_chain", "plan_chain",
    "read_catalog", "Finding", "UnpackLimits", "VerifyReport", "abort_bundle",
    "dump_embeddings", "export_snapshot", "finish_bundle", "import_artifacts", "import_records", "import_snapshot", "inspect_bundle",
    "manifest_of", "migrate_to_current", "migrate_v1_to_v2", "open_bundle", "open_target", "pack_bundle", "package_artifacts", "plan_import",
    "safe_unpack", "start_bundle", "verify_bundle", "write_artifacts", "write_embeddings",
    "BundleAccess", "check_signature", "encrypt_bundle", "sign_bundle",
]

_WHERE = {
    "ExportResult": "writer", "abort_bundle": "staging", "dump_embeddings": "writer",
    "export_snapshot": "writer", "finish_bundle": "writer", "package_artifacts": "writer",
    "start_bundle": "staging", "write_artifacts": "writer", "write_embeddings": "writer", "pack_bundle": "pack", "safe_unpack": "unpack", "UnpackLimits": "unpack",
    "Finding": "verify", "VerifyReport": "verify", "verify_bundle": "verify",
    "inspect_bundle": "reader", "manifest_of": "reader", "open_bundle": "reader",
    "export_delta": "delta", "DeltaResult": "delta", "import_chain": "delta_import", "plan_chain": "delta_import",
    "check_catalog": "catalog", "read_catalog": "catalog",
    "migrate_v1_to_v2": "migrate", "migrate_to_current": "migrate",
    "BundleAccess": "access", "sign_bundle": "signature", "check_signature": "signature", "encrypt_bundle": "encrypt",
    "import_snapshot": "importer", "import_records": "importer", "import_artifacts": "importer", "plan_import": "importer", "open_target": "import_target",
}


def __getattr__(name: str) -> Any:
    """Import the implementing module on first use (keeps ``import engine.snapshot`` light)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.snapshot' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
