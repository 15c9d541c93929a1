"""What a verification found: typed findings (:class:`Finding`), the report that collects them
(:class:`VerifyReport`, what ``procos snapshot verify --json`` prints) and the one error an operation
raises for a bundle that failed (:func:`failed`: every finding kept, a few named in its message).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import BundleInvalid

NO_SIGNATURE = {"status": "missing", "fingerprint": None}
MAX_NAMED = 5  # files named in a verification failure's one-line message


@dataclass(frozen=True)
class Finding:
    """One problem: the bundle-relative path it concerns, what is wrong, a code, and a hint."""

    path: str
    problem: str
    code: str = "invalid"
    hint: str | None = None

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "problem": self.problem}


@dataclass
class VerifyReport:
    """The outcome of :func:`verify_bundle`: ``ok`` when ``errors`` is empty."""

    path: str
    errors: list[Finding] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    unsupported_version: str | None = None
    signature: dict[str, Any] = field(default_factory=lambda: dict(NO_SIGNATURE))

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, path: str, problem: str, code: str = "invalid", hint: str | None = None) -> None:
        self.errors.append(Finding(path, problem, code, hint))

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "errors": [f.to_json() for f in self.errors], "manifest": self.manifest,
                "signature": dict(self.signature)}

    def summary(self) -> str:
        if self.ok:
            return f"{self.path}: OK ({self.stats.get('rows_checked', 0)} rows, {self.stats.get('files', 0)} files)"
        lines = [f"{self.path}: {len(self.errors)} problem(s)"]
        lines += [f"  {f.path}: {f.problem}" for f in self.errors]
        return "\n".join(lines)


def failed(name: object, findings: list[dict[str, str]], consequence: str,
           error: type[BundleInvalid] = BundleInvalid) -> BundleInvalid:
    """The error for a bundle that failed verification with ``findings`` (``[{"path", "problem"}]``)."""
    first = findings[0]
    paths = list(dict.fromkeys(f["path"] for f in findings))
    where = ", ".join(paths[:MAX_NAMED]) + (f" and {len(paths) - MAX_NAMED} more" if len(paths) > MAX_NAMED else "")
    return error(f"{name} failed verification with {len(findings)} problem(s) in {where}, e.g. {first['path']}: "
                 f"{first['problem']}; {consequence}", findings,
                 hint="run procos snapshot verify for the full list; export the bundle again or use another one")
