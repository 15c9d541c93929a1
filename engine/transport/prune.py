"""``prune``: remove the bundles of a location that a retention policy does not keep (plan, then apply).

The plan is :func:`engine.transport.policy.plan_prune` over the location's complete bundles; bundles
the policy would remove are first checked for Object Lock retention (S3), and those that cannot be
deleted yet become ``retained`` (kept whole, with their chains) before the plan is final. A dry run
returns that plan and changes nothing. Applying it removes the bundles newest first (see
:mod:`.removal`: manifest first, every version) and, in a local folder, drops their lines from
``snapshot_catalog.jsonl``. Incomplete things and export staging folders are left alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import TransportError

from .client import s3_client
from .listing import list_local, list_s3, local_holdings, s3_holdings
from .location import S3Location, parse_location
from .policy import Policy, plan_prune
from .removal import holding_versions, remove_local, remove_s3, retention


def prune(location: str | Path, policy: Policy, *, dry_run: bool = False, endpoint_url: str | None = None,
          client: Any = None) -> dict[str, Any]:
    """Plan (and unless ``dry_run``, apply) ``policy`` on ``location``.

    Returns ``{"location", "keep", "remove", "retained", "reasons", "warnings", "policy", "dry_run",
    "removed", "failed"}``: ``removed`` lists what was removed, ``failed`` maps a bundle that could
    not be removed to why (the command then exits non-zero).
    """
    loc = parse_location(location)
    remote = isinstance(loc, S3Location)
    if remote:
        client = client or s3_client(endpoint_url)
        bundles, _ = list_s3(client, loc)
        holdings = s3_holdings(client, loc)
    else:
        bundles, _ = list_local(loc)
        holdings = local_holdings(loc)
    first = plan_prune(bundles, policy)
    retained: dict[str, str] = {}
    if remote:
        for name in first["remove"]:
            why = retention(client, loc.bucket, holding_versions(client, loc, holdings[name]))
            if why is not None:
                retained[name] = why
    plan = plan_prune(bundles, policy, retained)
    result = {"location": loc.url if remote else str(loc), **plan, "dry_run": dry_run, "removed": [], "failed": {}}
    if dry_run:
        return result
    for name in plan["remove"]:
        try:
            why = remove_s3(client, loc, holdings[name]) if remote else remove_local(holdings[name])
        except (TransportError, OSError) as exc:
            result["failed"][name] = getattr(exc, "message", None) or str(exc)
            continue
        if why is not None:  # protected since the plan was made
            result["remove"].remove(name)
            result["retained"].append(name)
            result["reasons"][name] = [f"retained: {why}"]
        else:
            result["removed"].append(name)
    if not remote and result["removed"]:
        from engine.snapshot.catalog import drop_entries

        drop_entries(loc, set(result["removed"]))
    return result
