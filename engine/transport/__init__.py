"""Bundles that travel: push to and pull from S3, list, prune and clean up locations.

A *location* is a local snapshots folder or ``s3://BUCKET/PREFIX`` (:mod:`.location`). The public
functions, each called by one function of :mod:`engine.api.transport`:

- :func:`push_bundle` (:mod:`.push`, :mod:`.upload`): multipart, SHA-256 per part, resumable, manifest last
- :func:`pull_bundle`, :func:`fetched` (:mod:`.pull`, :mod:`.download`): ranged GETs, resumable,
  verified before the bundle appears; ``fetched`` is the temporary pull behind ``import s3://...``
- :func:`list_location` (:mod:`.listing`), :func:`abort_incomplete` (:mod:`.removal`)
- :func:`prune` (:mod:`.prune`) with the pure planning function :func:`plan_prune` (:mod:`.policy`)

boto3 is imported only when an S3 location is used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Policy", "PushOptions", "abort_incomplete", "fetched", "is_remote", "list_location", "plan_prune",
           "prune", "pull_bundle", "push_bundle"]

_WHERE = {
    "Policy": "policy", "plan_prune": "policy", "PushOptions": "upload", "push_bundle": "push",
    "pull_bundle": "pull", "fetched": "pull", "list_location": "listing", "abort_incomplete": "removal",
    "prune": "prune", "is_remote": "location",
}


def __getattr__(name: str) -> Any:
    """Import the implementing module on first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.transport' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
