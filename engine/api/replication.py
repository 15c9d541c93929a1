"""Continuous protection: ship a store's changes into a location, and restore it to a point in time.

``replicate_once`` ships one bundle when needed: a full bundle when the location holds none of this
store (or the last one is older than ``full_every``), else a delta of what changed since the newest
bundle there (nothing when nothing changed). The location itself says where shipping stands (every
bundle records its store, sequence and ``as_of_utc``), so a restarted replicator continues from the last
shipped sequence. A folder location gets each bundle's line in its ``snapshot_catalog.jsonl``; an
``s3://`` location gets bundles pushed with :func:`engine.api.push_snapshot` from a local outbox
(``PROCOS_HOME/replication/``), which keeps the last one as the base of the next delta. Bundles are signed
when ``PROCOS_SIGNING_KEY`` is set (restores in prod need it).

``restore`` picks the newest full bundle at or before a time plus its deltas up to it
(:mod:`engine.transport.timeline`) and imports them with :func:`engine.api.import_chain`, which verifies
every bundle and the lineage before a row is written.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import InvalidInput, ProcosError


def _is_s3(location: str | Path) -> bool:
    return str(location).startswith("s3://")


def _seconds(text: str | float | None, what: str, default: float) -> float:
    if text is None:
        return default
    if isinstance(text, int | float):
        return float(text)
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise InvalidInput(f"{what} {text!r} is not a duration", hint="write it like 30s, 15m, 1h or 24h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _outbox(location: str) -> Path:
    import hashlib

    from engine.config import home_dir

    return home_dir() / "replication" / hashlib.sha256(location.encode()).hexdigest()[:16]


def _base_path(location: str, tip: dict[str, Any]) -> str:
    """A local bundle (or manifest-only copy) of ``tip`` to build the next delta on."""
    if not _is_s3(location):
        return str(tip["location"])
    box = _outbox(location)
    local = box / tip["name"]
    if not (local / "manifest.json").is_file():  # restarted elsewhere: the manifest is all a delta needs
        import json

        from engine.transport.client import s3_client
        from engine.transport.location import parse_location

        loc = parse_location(location)
        body = s3_client(None).get_object(Bucket=loc.bucket, Key=loc.bundle_key(tip["name"], "manifest.json"))
        local.mkdir(parents=True, exist_ok=True)
        (local / "manifest.json").write_bytes(body["Body"].read())
        json.loads((local / "manifest.json").read_text())
    return str(local)


def replicate_once(source: str | None, location: str | Path, *, full_every: str | float = "24h",
                   now: datetime | None = None) -> dict[str, Any]:
    """Ship one bundle of ``source`` into ``location`` if it changed (or a full one is due).

    Returns ``{"location", "source_sequence", "shipped": None | {"kind", "name", "path", "snapshot_id",
    "sequence", "as_of_utc", "upserts", "deletes", "signed"}, "lag"}`` (``lag``: changes not shipped yet).
    """
    from . import export_delta, export_snapshot, list_snapshots, push_snapshot, sign_snapshot, signing_key
    from .stores import opened

    location = str(location)
    full_seconds = _seconds(full_every, "--full-every", 86400)
    with opened(source) as repo:
        store_id, sequence = repo.store_id, repo.sequence()
        source_uri = repo.uri
    s3 = _is_s3(location)
    if not s3:
        Path(location).mkdir(parents=True, exist_ok=True)
    from engine.transport.timeline import tip_of, when_of

    entries = list_snapshots(location)
    tip, full = tip_of(entries, store_id)
    now = now or datetime.now(UTC)
    out_dir = _outbox(location) if s3 else Path(location)
    if tip is not None and full is not None and (now - when_of(full)).total_seconds() < full_seconds:
        if (tip.get("sequence") or 0) >= sequence:
            return {"location": location, "source": source_uri, "source_sequence": sequence, "shipped": None,
                    "lag": 0}
        result = export_delta(source, _base_path(location, tip), out_dir)
    else:
        result = export_snapshot(source, out_dir)
        result["kind"] = "full"
    bundle = result["path"]
    key = signing_key()
    if key:
        sign_snapshot(bundle, key)
    if s3:
        push_snapshot(bundle, location)
        for old in Path(out_dir).iterdir():  # keep only the newest bundle as the next delta's base
            if old.is_dir() and old.name != Path(bundle).name:
                shutil.rmtree(old, ignore_errors=True)
    from engine.snapshot import manifest_of

    doc = manifest_of(bundle)
    shipped = {"kind": result.get("kind", "delta"), "name": Path(bundle).name, "path": bundle if not s3 else
               f"{location.rstrip('/')}/{Path(bundle).name}", "snapshot_id": doc["snapshot_id"],
               "sequence": doc.get("sequence"), "as_of_utc": doc.get("as_of_utc"), "record_count": doc["record_count"],
               "upserts": result.get("upserts"), "deletes": result.get("deletes"), "signed": bool(key)}
    return {"location": location, "source": source_uri, "source_sequence": sequence, "shipped": shipped,
            "lag": max(0, sequence - int(doc.get("sequence") or 0))}


def replicate(source: str | None, location: str | Path, *, interval: str | float = "30s",
              full_every: str | float = "24h", rounds: int | None = None,
              on_round: Any = None) -> dict[str, Any]:
    """Ship every ``interval`` until SIGTERM/Ctrl-C (or ``rounds``); ``on_round(result)`` sees each round.

    A round that fails (the store or the location unreachable) is reported with ``"error"`` and the next
    round tries again. Returns ``{"rounds", "shipped", "full", "delta", "errors"}``.
    """
    every = _seconds(interval, "--interval", 30)
    _seconds(full_every, "--full-every", 86400)
    counts = {"rounds": 0, "shipped": 0, "full": 0, "delta": 0, "errors": 0}
    try:
        while rounds is None or counts["rounds"] < rounds:
            started = time.monotonic()
            try:
                result = replicate_once(source, location, full_every=full_every)
            except ProcosError as exc:  # a round that fails (store or location unreachable) does not stop it
                result = {"location": str(location), "shipped": None, "error": exc.message, "hint": exc.hint}
                counts["errors"] = counts.get("errors", 0) + 1
            counts["rounds"] += 1
            if result["shipped"]:
                counts["shipped"] += 1
                counts[result["shipped"]["kind"]] += 1
            if on_round is not None:
                on_round(result)
            if rounds is not None and counts["rounds"] >= rounds:
                break
            time.sleep(max(0.0, every - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass
    return counts


def restore_plan(location: str | Path, *, at: str | datetime | None = None,
                 store_id: str | None = None) -> dict[str, Any]:
    """Which bundles ``restore`` would import: ``{"location", "at", "chain": [{"name", "kind", "snapshot_id",
    "sequence", "as_of_utc", "location"}]}`` (newest full bundle at or before ``at``, then its deltas)."""
    from engine.transport.timeline import newest_chain, parse_time

    from . import list_snapshots

    when = parse_time(at) if at is not None else None
    chain = newest_chain(list_snapshots(str(location)), when, store_id=store_id)
    keys = ("name", "kind", "snapshot_id", "sequence", "as_of_utc", "created_utc", "record_count", "signed", "location")
    return {"location": str(location), "at": when.isoformat().replace("+00:00", "Z") if when else None,
            "chain": [{k: e.get(k) for k in keys} for e in chain]}


def restore(location: str | Path, target: str | None, *, at: str | datetime | None = None, dry_run: bool = False,
            store_id: str | None = None, trusted_keys: list[str] | None = None) -> dict[str, Any]:
    """Restore into ``target`` the state the source had at ``at`` (None: the newest shipped state).

    The target's records are replaced atomically by the chain's final state (every bundle and the lineage
    are verified first; in prod each bundle needs a good signature). Returns the plan plus
    ``"import"`` (:func:`engine.api.import_chain`'s result, or its plan with ``dry_run``) and ``"seconds"``.
    """
    from . import import_chain

    plan = restore_plan(location, at=at, store_id=store_id)
    started = time.perf_counter()
    result = import_chain([e["location"] for e in plan["chain"]], target, mode="replace", dry_run=dry_run,
                          trusted_keys=trusted_keys)
    return {**plan, "target": result.get("target"), "dry_run": dry_run, "import": result,
            "seconds": round(time.perf_counter() - started, 3)}
