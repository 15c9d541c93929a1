"""What the web panel needs beyond the operations: its configuration, uploads, reports and manifests.

The panel's configuration is ``$PROCOS_HOME/panel.yaml`` (``PROCOS_PANEL_CONFIG`` names another file)::

    stores:
      - {name: kb, uri: "faiss:/srv/kb"}
      - {name: prod-pg, uri: "postgresql://kb@db/knowledge?password_env=KB_PASSWORD"}
    locations: [/srv/snapshots, "s3://bucket/prefix"]
    upload_limit_mb: 2048          # the largest bundle an upload may be (default 2048)
    uploads: /srv/procos/uploads   # where uploads are kept (default PROCOS_HOME/uploads)

``VECTOR_ENDPOINT``, when set, is one more store (named ``VECTOR_ENDPOINT``) unless it is listed. A
store URI must not carry a password (``***`` or ``?password_env=NAME`` instead): the file is refused
otherwise, since what the panel shows and what processes store must never hold one.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, InvalidInput

DEFAULT_UPLOAD_LIMIT_MB = 2048
UPLOAD_SUFFIXES = (".tar.zst", ".age")
IDENTITY_SUFFIXES = (".txt", ".key", "")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def _home() -> Path:
    from engine.config import home_dir

    return home_dir()


def panel_config_path() -> Path:
    raw = os.environ.get("PROCOS_PANEL_CONFIG")
    return Path(raw).expanduser().resolve() if raw else _home() / "panel.yaml"


def panel_config() -> dict[str, Any]:
    """``{"stores": [{"name", "uri"}], "locations": [str], "upload_limit_mb": int, "uploads": str, "path": str}``."""
    import yaml

    from engine.config import load_config
    from engine.secrets import redact_text

    path = panel_config_path()
    doc: Any = {}
    if path.is_file():
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"panel config {path} cannot be read: {exc}",
                              hint="fix the file: stores: [{name: kb, uri: 'faiss:/srv/kb'}], locations: [/srv/snapshots]"
                              ) from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"panel config {path} must be a YAML mapping",
                          hint="stores: [{name: kb, uri: 'faiss:/srv/kb'}]\nlocations: [/srv/snapshots]")
    unknown = sorted(set(map(str, doc)) - {"stores", "locations", "upload_limit_mb", "uploads"})
    if unknown:
        raise ConfigError(f"panel config {path} has unknown key(s) {', '.join(unknown)}",
                          hint="known keys: stores, locations, upload_limit_mb, uploads")
    stores = []
    for i, item in enumerate(doc.get("stores") or []):
        if not isinstance(item, dict) or not isinstance(item.get("uri"), str) or not item.get("uri"):
            raise ConfigError(f"panel config {path}: stores[{i}] needs a uri", hint="- {name: kb, uri: 'faiss:/srv/kb'}")
        if redact_text(item["uri"]) != item["uri"]:
            raise ConfigError(f"panel config {path}: stores[{i}] holds a password in its URI",
                              hint="use ?password_env=NAME (the variable holds the password) or PGPASSWORD / ~/.pgpass")
        stores.append({"name": str(item.get("name") or item["uri"]), "uri": item["uri"]})
    endpoint = load_config().get("endpoint")
    if endpoint and all(s["uri"] != endpoint for s in stores):
        stores.append({"name": "VECTOR_ENDPOINT", "uri": endpoint})
    locations = doc.get("locations") or []
    if not isinstance(locations, list) or not all(isinstance(x, str) and x for x in locations):
        raise ConfigError(f"panel config {path}: locations must be a list of folders or s3:// prefixes")
    limit = doc.get("upload_limit_mb", DEFAULT_UPLOAD_LIMIT_MB)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        raise ConfigError(f"panel config {path}: upload_limit_mb must be a positive whole number of MiB")
    uploads = Path(str(doc.get("uploads") or _home() / "uploads")).expanduser().resolve()
    return {"stores": stores, "locations": [str(x) for x in locations], "upload_limit_mb": limit,
            "uploads": str(uploads), "path": str(path)}


# --- uploads ---------------------------------------------------------------------------------------


def _uploads_root() -> Path:
    from engine.files import private_dir

    return private_dir(Path(panel_config()["uploads"]))


def receive_upload(owner: str, filename: str, chunks: Iterable[bytes], *, limit_bytes: int,
                   kind: str = "bundle") -> str:
    """Stream ``chunks`` into a new private file under the uploads folder; return its path.

    ``kind`` is ``bundle`` (the name must end in .tar.zst or .age) or ``identity`` (an age key file).
    The file is written as ``<uploads>/<owner>/<random>/<name>.part`` (mode 0600) and renamed when
    complete; past ``limit_bytes`` the partial file is removed and InvalidInput raised.
    """
    from engine.files import private_dir

    name = _SAFE_NAME.sub("_", Path(filename).name).lstrip(".") or "upload"
    if kind == "bundle" and not name.endswith(UPLOAD_SUFFIXES):
        raise InvalidInput(f"{filename!r} is not a packed bundle", hint="upload a .tar.zst bundle, or an .age one")
    if kind not in ("bundle", "identity"):
        raise InvalidInput(f"unknown upload kind {kind!r}")
    folder = private_dir(_uploads_root() / _SAFE_NAME.sub("_", owner) / f"{time.strftime('%Y%m%d_%H%M%S')}_"
                                                                      f"{secrets.token_hex(4)}")
    final = folder / name
    part = folder / f"{name}.part"
    written = 0
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                written += len(chunk)
                if written > limit_bytes:
                    raise InvalidInput(f"upload {filename!r} is larger than the limit of {limit_bytes:,} bytes",
                                       hint="raise upload_limit_mb in panel.yaml, or copy the bundle to a "
                                            "snapshots location and pick it from the list")
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.rename(part, final)
    except BaseException:
        part.unlink(missing_ok=True)
        _remove_empty(folder)
        raise
    return str(final)


def remove_upload(path: str | Path) -> bool:
    """Remove an uploaded file (and its folder when empty); only files under the uploads folder."""
    root = _uploads_root().resolve()
    p = Path(path).resolve()
    if root not in p.parents:
        raise InvalidInput(f"{p} is not an upload", hint=f"uploads live under {root}")
    existed = p.is_file()
    p.unlink(missing_ok=True)
    _remove_empty(p.parent)
    return existed


def is_upload(path: str | Path) -> bool:
    return Path(_uploads_root()).resolve() in Path(path).resolve().parents


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


# --- reports and manifests -------------------------------------------------------------------------


def list_validation_reports() -> list[dict[str, Any]]:
    """The validation reports under ``PROCOS_HOME/reports/``, newest first: ``[{"name", "path", "bytes",
    "modified", "passed"}]`` (``passed`` from the report's first line; None when it says neither)."""
    folder = _home() / "reports"
    found = []
    for p in sorted(folder.glob("validation_*.md"), key=lambda f: f.stat().st_mtime, reverse=True) \
            if folder.is_dir() else []:
        with open(p, encoding="utf-8", errors="replace") as fh:
            head = fh.read(400)
        passed = True if "PASS" in head else False if "FAIL" in head else None
        found.append({"name": p.name, "path": str(p), "bytes": p.stat().st_size,
                      "modified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(p.stat().st_mtime)),
                      "passed": passed})
    return found


def read_validation_report(name: str) -> str:
    """The Markdown text of report ``name`` (a file name listed by :func:`list_validation_reports`)."""
    folder = (_home() / "reports").resolve()
    path = (folder / Path(name).name).resolve()
    if path.parent != folder or not path.name.startswith("validation_") or not path.is_file():
        raise InvalidInput(f"no validation report {name!r}", hint="list_validation_reports() lists them")
    return path.read_text(encoding="utf-8", errors="replace")


def read_drill_report(path: str | Path) -> dict[str, Any]:
    """A DR drill report (the JSON ``write_drill_report`` wrote) with its Markdown beside it (``markdown``)."""
    import json

    p = Path(path)
    if not p.name.startswith("dr_drill_") or p.suffix != ".json":
        raise InvalidInput(f"{p} is not a drill report", hint="drill reports are dr_drill_<time>.json")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"drill report {p} cannot be read: {exc}") from exc
    md = p.with_suffix(".md")
    return {**doc, "path": str(p), "markdown": md.read_text(encoding="utf-8") if md.is_file() else None}


def snapshot_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a bundle folder or ``.tar.zst`` as written (not verified)."""
    from engine.snapshot import manifest_of

    return manifest_of(path)
