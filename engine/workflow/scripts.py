"""Versioned scripts: resolve a script task's ``procos:script`` + ``procos:sha256`` pin, check it, run it.

A script is a Python module defining ``run(ctx)``. It is named by a path relative to the folder that
holds ``processes/`` and ``scripts/`` or by an ``https://`` URL (plain ``http://`` only for loopback
addresses: 127.0.0.0/8, ::1, localhost, for tests). Every script must be pinned: bytes whose sha256
differs from the pin are refused (:class:`ScriptRefused`) and never run; a URL is only fetched when
pinned, redirects are refused, at most :data:`MAX_SCRIPT_BYTES` are read (streamed: the download
stops as soon as the cap is passed), and pinned bytes are cached by hash under ``PROCOS_HOME``.

Resolution happens at deploy time; the code is embedded in the task spec (see :meth:`to_stub`) so a
saved instance carries the exact bytes it started with and checks them again before each run.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import linecache
import os
import re
import traceback
import types
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from engine.errors import ScriptFailed, ScriptRefused, WorkflowError

STUB_MARKER = "# procos:versioned-script (run by engine.workflow, not inline)"
FETCH_TIMEOUT = 15
MAX_SCRIPT_BYTES = 1024 * 1024  # a script larger than 1 MiB is refused (local or remote)
_PIN = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ResolvedScript:
    """A script whose bytes matched their pin: where it came from, its sha256 and its code."""

    task: str  # BPMN id of the script task
    process_file: str
    source: str  # relative path or URL, as written in the BPMN file
    sha256: str
    code: str

    def to_stub(self) -> str:
        """The text stored as the Spiff task's script: a marker line and this record as JSON."""
        return STUB_MARKER + "\n" + json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_stub(cls, text: str | None, where: str = "versioned-script stub") -> ResolvedScript | None:
        """Decode :meth:`to_stub` output; ``None`` when ``text`` is not a versioned-script stub.

        A stub certifies nothing by itself: the script engine runs it only when its task, source and
        sha256 are among the pins recorded when the instance started. Raises ScriptRefused when the
        text has the marker but is not a well-formed stub."""
        if not text or not text.startswith(STUB_MARKER):
            return None
        try:
            record = json.loads(text[len(STUB_MARKER) + 1 :])
            names = {f.name for f in fields(cls)}
            if not isinstance(record, dict) or set(record) != names or \
                    not all(isinstance(v, str) for v in record.values()):
                raise ValueError(f"expected the string fields {sorted(names)}")
        except ValueError as exc:
            raise ScriptRefused(f"{where}: malformed versioned-script stub ({exc}); refused") from None
        return cls(**record)

    @property
    def display_name(self) -> str:
        return f"<procos-script {self.source}>"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_url(source: str) -> bool:
    """Does ``source`` name a URL (any ``scheme://``) rather than a path?"""
    return "://" in source


def check_url(url: str, where: str) -> None:
    """Refuse a script URL that is not ``https://`` (or ``http://`` to a loopback address)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and _is_loopback(host):
        return
    raise ScriptRefused(f"{where}: script URL {url} is refused: scripts are fetched over https:// only "
                        "(plain http:// only from a loopback address, for tests)",
                        hint="serve the script over https, or copy it under scripts/ and pin it")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_script(source: str, pin: str | None, *, task: str, process_file: str,
                   base_dirs: list[Path], cache_dir: Path) -> ResolvedScript:
    """Find, fetch (URLs) and pin-check one script; raise :class:`ScriptRefused` on a missing or wrong pin."""
    where = f"script task {task!r} in {process_file}"
    pin = (pin or "").strip().lower() or None
    if pin is None:
        raise ScriptRefused(f"{where}: script {source} has no procos:sha256 pin; unpinned scripts never run",
                            hint=f"add procos:sha256=\"<sha256 of the script>\" (sha256sum {source})")
    if not _PIN.fullmatch(pin):
        raise ScriptRefused(f"{where}: procos:sha256 of {source} is not a sha256 (64 hex digits): {pin!r}",
                            hint=f"sha256sum {source}")
    if is_url(source):
        check_url(source, where)
        data = _fetch(source, pin, where, cache_dir)
    else:
        data = _read_local(source, where, base_dirs)
    actual = sha256_hex(data)
    if actual != pin:
        raise ScriptRefused(f"{where}: script {source} has sha256 {actual} but is pinned to {pin}; refused",
                            hint="review the script change, then update procos:sha256 in the BPMN file")
    try:
        code = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScriptRefused(f"{where}: script {source} is not UTF-8 text ({exc})") from exc
    return ResolvedScript(task=task, process_file=process_file, source=source, sha256=pin, code=code)


def _read_local(source: str, where: str, base_dirs: list[Path]) -> bytes:
    rel = PurePosixPath(source)
    if rel.is_absolute() or ".." in rel.parts:
        raise ScriptRefused(f"{where}: script path {source} must be relative and stay inside the project",
                            hint="name scripts like scripts/v1/dump_vectors.py")
    for base in base_dirs:
        candidate = base / rel
        if candidate.is_file():
            with candidate.open("rb") as fh:
                data = fh.read(MAX_SCRIPT_BYTES + 1)
            if len(data) > MAX_SCRIPT_BYTES:
                raise ScriptRefused(f"{where}: script {candidate} is larger than {MAX_SCRIPT_BYTES} bytes; refused")
            return data
    searched = ", ".join(str(b) for b in base_dirs)
    raise WorkflowError(f"{where}: script {source} not found (searched {searched})",
                        hint="put scripts/ next to the processes/ folder that holds the BPMN file")


def _fetch(url: str, pin: str, where: str, cache_dir: Path) -> bytes:
    cached = cache_dir / f"{pin}.py"
    if cached.is_file():
        data = cached.read_bytes()
        if sha256_hex(data) == pin:
            return data
    data = _download(url, where)
    if sha256_hex(data) == pin:  # only pinned bytes are cached
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, cached)
    return data


def _download(url: str, where: str) -> bytes:
    """GET ``url`` without following redirects, streaming, refusing more than MAX_SCRIPT_BYTES."""
    import requests  # lazy: only deployments with remote scripts pay for it

    try:
        with requests.get(url, timeout=FETCH_TIMEOUT, allow_redirects=False, stream=True) as response:
            if response.is_redirect or 300 <= response.status_code < 400:
                raise ScriptRefused(f"{where}: script URL {url} redirects to "
                                    f"{response.headers.get('Location', '?')}; redirects are refused",
                                    hint="name the final https:// URL in procos:script")
            response.raise_for_status()
            chunks, size = [], 0
            for chunk in response.iter_content(chunk_size=64 * 1024):
                size += len(chunk)
                if size > MAX_SCRIPT_BYTES:
                    raise ScriptRefused(f"{where}: script URL {url} sends more than {MAX_SCRIPT_BYTES} bytes; "
                                        "refused", hint="a script is a small module: check the URL")
                chunks.append(chunk)
    except requests.RequestException as exc:
        raise WorkflowError(f"{where}: cannot fetch script {url}: {exc}",
                            hint="check the URL and the network, then start the process again") from exc
    return b"".join(chunks)


def run_script(script: ResolvedScript, ctx: object) -> None:
    """Check the embedded code against its pin once more, load it as a module and call ``run(ctx)``.

    Exceptions raised by the script propagate unchanged; use :func:`describe_failure` to build the
    :class:`ScriptFailed` with provenance.
    """
    if sha256_hex(script.code.encode("utf-8")) != script.sha256:
        raise ScriptRefused(f"script task {script.task!r}: embedded code of {script.source} does not match "
                            f"its pin {script.sha256}; refused", hint="the saved instance was altered")
    name = script.display_name
    lines = script.code.splitlines(keepends=True)
    linecache.cache[name] = (len(script.code), None, lines, name)
    module = types.ModuleType(f"procos_script_{script.sha256[:12]}")
    module.__file__ = name
    exec(compile(script.code, name, "exec"), module.__dict__)  # noqa: S102 - pinned, reviewed code
    run = getattr(module, "run", None)
    if not callable(run):
        raise ScriptFailed(f"script {script.source} defines no run(ctx) function",
                           hint="define def run(ctx): ... in the script")
    run(ctx)


def describe_failure(script: ResolvedScript, exc: BaseException, task_name: str) -> ScriptFailed:
    """A :class:`ScriptFailed` naming the task, process file, script, sha256 and failing line."""
    line_no, line = error_location(script, exc)
    at = f" line {line_no}: {line.strip()}" if line_no else ""
    err = ScriptFailed(
        f"script task {task_name!r} ({script.task}) in {script.process_file} failed: "
        f"{type(exc).__name__}: {exc} [script {script.source} sha256 {script.sha256[:12]}{at}]",
        hint=getattr(exc, "hint", None) or "fix the cause, then run: procos instance retry ID",
    )
    err.exit_code = getattr(exc, "exit_code", 1)  # a bundle that failed verification stays a 3, and so on
    err.line_number, err.error_line = line_no, line.strip()
    return err


def error_location(script: ResolvedScript, exc: BaseException) -> tuple[int, str]:
    """The innermost line of ``script`` in the traceback of ``exc`` (0, "" when not in the script)."""
    if isinstance(exc, SyntaxError) and exc.filename == script.display_name:
        return exc.lineno or 0, exc.text or ""
    found = (0, "")
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == script.display_name:
            found = (frame.lineno or 0, frame.line or "")
    return found
