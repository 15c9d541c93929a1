"""The exception hierarchy: every error a user can see derives from :class:`ProcosError`.

Each error carries a message that says what is wrong and where (record id, file, setting, task)
and, where one exists, a ``hint`` that says what to do about it. The CLI prints the message on one
line (``Error: ...``) and the hint on the next (``Try: ...``) and exits non-zero.
"""

from __future__ import annotations

import errno
import functools
import inspect
import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES = {
    0: "succeeded (also a rejection the approver chose)", 1: "error", 2: "usage error",
    3: "bundle verification failed", 4: "a check failed (validation failed, drift found, drill failed)",
    75: "store paused or locked (try again later)", 77: "not authorized",
    130: "interrupted (Ctrl-C or SIGTERM; an instance resumes with procos instance retry ID)",
}


class ProcosError(Exception):
    """Base class of every user-facing error."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(ProcosError):
    """The configuration (environment variables, config.yaml) is invalid."""

    exit_code = 2


# --- records and queries -------------------------------------------------------------------------


class InvalidRecord(ProcosError):
    """A record (or a batch holding it) failed validation; nothing of the batch was written."""

    def __init__(self, record_id: object, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"record {record_id!r}: {problem}", hint=hint)
        self.record_id = record_id
        self.problem = problem


class InvalidFilter(ProcosError):
    """A metadata filter is malformed or uses an operator the stores do not support."""


class ConflictError(ProcosError):
    """An incoming record collides with a stored one under the ``error`` conflict rule."""


class StreamsOverlap(ConflictError):
    """Two streams loaded side by side (one connection each) hold the same id."""


class RecordNotFound(ProcosError):
    """No stored record has the given id."""


class InvalidInput(ProcosError):
    """A value or file given by the user (query vector, JSON argument) cannot be read or used."""


# --- stores ------------------------------------------------------------------------------------


class StoreError(ProcosError):
    """A vector store cannot be opened or used."""


class InvalidURI(StoreError):
    """A store URI cannot be parsed or names an unknown backend."""


class SettingsMismatch(StoreError):
    """A setting given explicitly differs from the one the existing store was created with."""


class StoreNotFound(StoreError):
    """No store exists at the URI and the operation does not create one."""


class StoreLocked(StoreError):
    """Another process is writing to the store right now."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class IngestionPaused(StoreError):
    """The store's freeze flag is set; writes are refused until ``resume_ingestion()``."""

    exit_code = 75


class StoreCorrupt(StoreError):
    """Files of a store are missing or inconsistent with each other."""


# --- snapshots ---------------------------------------------------------------------------------


class BundleError(ProcosError):
    """A snapshot bundle cannot be written, read or trusted."""


class BundleInvalid(BundleError):
    """Verification found problems in a bundle; ``findings`` lists every one of them."""

    exit_code = 3

    def __init__(self, message: str, findings: list | None = None, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.findings = list(findings or [])


class BundleChanged(BundleInvalid):
    """The bundle's content is not the content that was approved (changed or replaced since)."""

    exit_code = 3


class ChecksumMismatch(BundleInvalid):
    """A file's bytes do not match its line in ``checksums.sha256``."""


class SignatureError(BundleInvalid):
    """A bundle's signature is bad, or not good where a good one is required."""

    exit_code = 3  # bundle verification failed


class BadSignature(SignatureError):
    """``checksums.sha256.asc`` does not verify against ``checksums.sha256`` (among the findings)."""


class SignatureRequired(SignatureError):
    """A bundle without a good signature by a trusted key, where one is required; nothing was written."""


class DecryptionFailed(BundleInvalid):
    """An encrypted bundle (``.age``) cannot be decrypted: no matching key, or damaged ciphertext."""

    exit_code = 3


class SigningFailed(BundleError):
    """``gpg`` could not sign (no such secret key, a key that needs a passphrase, gpg missing)."""


class UnsafeArchive(BundleError):
    """A ``.tar.zst`` holds an entry that could escape or abuse the unpack directory."""


class ArchiveDamaged(UnsafeArchive):
    """A ``.tar.zst`` is not exactly what ``pack`` writes: truncated, bytes appended, a second zstd frame,
    undecodable, or data after the tar's end. ``path`` is the archive's file name, ``problem`` the message
    without it (a verification finding's text)."""

    exit_code = 3

    def __init__(self, message: str, *, hint: str | None = None, path: str | None = None,
                 problem: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.problem = problem or message


class UnsupportedSchemaVersion(BundleError):
    """A bundle's schema_version is newer than this tool knows (or otherwise unknown)."""


class LineageError(BundleError):
    """A chain of delta bundles has a gap, a fork or a wrong parent."""


# --- transport ---------------------------------------------------------------------------------


class TransportError(ProcosError):
    """A bundle could not be moved to or from a location (S3 or a folder), or a remote bundle is unusable.

    The message names the location and what is missing; it never holds credentials.
    """


# --- workflows ---------------------------------------------------------------------------------


class WorkflowError(ProcosError):
    """A process definition or instance cannot be loaded, started or advanced."""


class InvalidVariables(WorkflowError):
    """A process was started (or retried) with missing, unknown or wrong variables; nothing was created."""

    exit_code = 2


class ProcessNotFound(WorkflowError):
    """No deployed process has the given name."""


class InstanceNotFound(WorkflowError):
    """No instance has the given id."""


class InstanceBusy(WorkflowError):
    """Another runner holds the instance right now."""

    exit_code = 75


class Interrupted(ProcosError):
    """Ctrl-C or SIGTERM stopped the command; an instance it was running is ``interrupted``."""

    exit_code = 130


class TaskNotFound(WorkflowError):
    """No waiting user task has the given id."""


class NotAuthorized(WorkflowError):
    """The user may not perform this action (lane role missing, separation of duties)."""

    exit_code = 77  # EX_NOPERM


class LoginThrottled(NotAuthorized):
    """Too many failed logins for a user name or a client address: logins are refused for a while."""


class ScriptRefused(WorkflowError):
    """A versioned script failed its sha256 pin check (or has no pin) and was not run."""


class ProcessRefused(WorkflowError):
    """A process file holds code outside pinned script tasks (or is defined twice); nothing of it runs."""


class ExpressionRefused(WorkflowError):
    """An expression (gateway condition, timer, loop) is outside the restricted condition language."""


class ScriptFailed(WorkflowError):
    """A script task raised; the message carries the task, process file, script and line."""


# --- files and folders ---------------------------------------------------------------------------


class PathError(ProcosError):
    """A file or folder cannot be created, read or written (missing, not a folder, not permitted)."""


class DiskFull(PathError):
    """The filesystem ran out of space (or a file size limit was reached) while writing."""


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_HINTS = {
    errno.ENOENT: "check that the path exists and that its parent is an ordinary folder you can write in "
                  "(/proc, /sys and /dev are not)",
    errno.EACCES: "choose a location you may write to, or fix the permissions of {path}",
    errno.EPERM: "choose a location you may write to, or fix the permissions of {path}",
    errno.EROFS: "{path} is on a read-only filesystem: choose another location",
    errno.ENOTDIR: "a part of {path} is a file, not a folder: choose another location",
    errno.EISDIR: "{path} is a folder where a file belongs: move it away, or choose another location",
    errno.EEXIST: "{path} already exists: move it away, or choose another location",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) and run it again",
    errno.ENFILE: "too many open files on this system: close some programs and run it again",
    errno.ENAMETOOLONG: "choose a shorter path",
}
_FULL_HINT = ("free space on the filesystem holding {path} (or raise the file size limit), or choose another "
              "location, then run it again; nothing unfinished was published")


def os_error(exc: OSError, action: str, place: object = None) -> PathError:
    """The typed error of an OSError raised while trying to ``action`` (``"export the snapshot into X"``).

    The message names the file or folder (the error's own, else ``place``) and what the system said;
    the hint says what to do.
    """
    code = exc.errno if isinstance(exc.errno, int) else _errno_in(str(exc))
    path = exc.filename
    where = f" {path}" if path is not None else ""
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    reason = exc.strerror or (os.strerror(code) if code else " ".join(str(exc).split()) or type(exc).__name__)
    target = exc.filename2 if exc.filename2 is not None else path  # a rename fails on its destination
    shown = target if target is not None else (place if place is not None else "the target location")
    message = f"cannot {action}: {reason}{':' if where else ''}{where}"
    if code in _FULL:
        return DiskFull(message, hint=_FULL_HINT.format(path=shown))
    hint = _HINTS.get(code or -1, "check the path and the filesystem, then run it again")
    return PathError(message, hint=hint.format(path=shown))


def _errno_in(text: str) -> int | None:
    """An errno named in a wrapped message (pyarrow and SQLite report ENOSPC in words)."""
    lowered = text.lower()
    if "no space left" in lowered or "errno 28" in lowered or "disk is full" in lowered:
        return errno.ENOSPC
    if "file too large" in lowered or "errno 27" in lowered:
        return errno.EFBIG
    return None


def os_errors(action: str, place: str | None = None) -> Callable[[F], F]:
    """Decorate a front-door function: an OSError escaping it becomes :func:`os_error` of ``action``.

    ``action`` may name the function's arguments (``"export the snapshot into {out_dir}"``), and
    ``place`` names the argument that is the location the hint talks about when the error has none.
    """

    def wrap(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except OSError as exc:
                bound = signature.bind_partial(*args, **kwargs).arguments
                text = action.format_map(_Arguments(bound))
                raise os_error(exc, text, bound.get(place) if place else None) from exc
        return call  # type: ignore[return-value]

    return wrap


class _Arguments(dict):
    def __missing__(self, key: str) -> str:
        return "?"
