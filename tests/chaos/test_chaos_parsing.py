"""Property tests of everything that parses bundle input: the manifest, checksums, the catalog, delta chains.

For arbitrary input each parser gives either a correct parse or a clean typed error
(:class:`~engine.errors.ProcosError`), never an unexpected exception. The verifier is run on real
bundles whose manifest, checksums or ``changes.jsonl`` were replaced by generated content (and
resealed, so the checks behind the checksums run too). ``make chaos`` runs many more examples.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from chaos.chaos_support import full_run
from engine import api
from engine.errors import ProcosError
from engine.repository import open_repository
from engine.snapshot import catalog, checksums, delta_import, manifest
from engine.snapshot.verify import verify_dir
from engine.synthetic import record_id, synthetic_artifacts, synthetic_batches

EXAMPLES = 400 if full_run() else 25
CHECK = settings(max_examples=EXAMPLES, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("chaos-parse")
    uri = f"faiss:{root / 'source'}?index=flat"
    repo = open_repository(uri, dimensions=4)
    repo.bulk_load(synthetic_batches(60, 4, seed=71))
    for path, data in list(synthetic_artifacts(71).items())[:3]:
        repo.artifacts.write(path, data)
    repo.close()
    full = Path(api.export_snapshot(uri, root / "snaps", shard_rows=25)["path"])
    repo = open_repository(uri)
    repo.write_batch(next(synthetic_batches(5, 4, seed=72)))
    repo.delete([record_id(50)])
    repo.close()
    delta = Path(api.export_delta(uri, full, root / "snaps")["path"])
    return {"root": root, "full": full, "delta": delta}


def count(chaos, name: str) -> None:
    figures = chaos.ledger.op(f"parse-{name}")
    figures.trials += 1


def recorded(chaos, name: str, run) -> None:
    """Run the hypothesis test ``run`` seeded by the campaign's seed; a failing property is a violation in
    the ledger, then re-raised."""
    try:
        seed(chaos.seed)(run)()
    except BaseException as exc:
        figures = chaos.ledger.op(f"parse-{name}")
        figures.violations += 1
        figures.failures.append(f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}")
        raise


def reseal(bundle: Path, rel: str, data: bytes) -> None:
    """Write ``data`` as ``rel`` and update its checksum line, as a careful forger would."""
    (bundle / rel).write_bytes(data)
    entries, _ = checksums.parse_lines((bundle / "checksums.sha256").read_text())
    entries[rel] = hashlib.sha256(data).hexdigest()
    (bundle / "checksums.sha256").write_text(checksums.format_lines(entries))


def set_path(doc, path: list, value):
    """``doc`` with the value at ``path`` (keys and list indexes, taken modulo) replaced by ``value``."""
    if not path or not isinstance(doc, dict | list) or not doc:
        return value
    if isinstance(doc, dict):
        keys = sorted(doc)
        key = keys[path[0] % len(keys)]
        return {**doc, key: set_path(doc[key], path[1:], value)}
    i = path[0] % len(doc)
    return doc[:i] + [set_path(doc[i], path[1:], value)] + doc[i + 1:]


def test_manifest_parsing_gives_a_dict_or_a_typed_error(chaos):
    @CHECK
    @given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
    def prop(data: bytes) -> None:
        count(chaos, "manifest")
        try:
            doc = manifest.loads(data)
        except ProcosError:
            return
        assert isinstance(doc, dict)
        assert isinstance(manifest.schema_problems(doc), list)
        problem = manifest.version_problem(doc)
        assert problem is None or isinstance(problem, str)
        assert isinstance(manifest.embedding_files(doc), list)
        try:
            manifest.check_version(doc)
        except ProcosError:
            assert problem is not None

    recorded(chaos, "manifest", prop)


def test_verify_reports_any_manifest_it_is_given(chaos, bundles, tmp_path):
    work = tmp_path / bundles["full"].name
    shutil.copytree(bundles["full"], work)
    original = json.loads((bundles["full"] / "manifest.json").read_bytes())

    @CHECK
    @given(st.lists(st.integers(0, 50), max_size=4), json_values, st.booleans())
    def prop(path: list[int], value, whole: bool) -> None:
        count(chaos, "manifest-in-bundle")
        doc = value if whole else set_path(original, path, value)
        reseal(work, "manifest.json", manifest.dumps(doc) if isinstance(doc, dict) else json.dumps(doc).encode())
        report = verify_dir(work)
        if json.dumps(doc, sort_keys=True) == json.dumps(original, sort_keys=True):  # (False == 0 in Python)
            assert report.ok
        if not isinstance(doc, dict) or manifest.schema_problems(doc):
            assert not report.ok and any(f.path == "manifest.json" for f in report.errors)

    recorded(chaos, "manifest-in-bundle", prop)


def test_checksums_parse_round_trips_and_never_raises(chaos):
    paths = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=["Cs"]), min_size=1, max_size=30)

    @CHECK
    @given(st.text(max_size=400), st.dictionaries(paths, st.binary(max_size=8).map(
        lambda b: hashlib.sha256(b).hexdigest()), max_size=6))
    def prop(text: str, entries: dict[str, str]) -> None:
        count(chaos, "checksums")
        listed, problems = checksums.parse_lines(text)
        assert isinstance(listed, dict) and isinstance(problems, list)
        clean = {p: h for p, h in entries.items() if p.strip() == p and p}
        back, trouble = checksums.parse_lines(checksums.format_lines(clean))
        assert back == clean and trouble == []

    recorded(chaos, "checksums", prop)


def test_catalog_reading_reports_bad_lines_and_never_raises(chaos, tmp_path):
    good = json.dumps({"snapshot_id": "a", "kind": "full", "parent": None, "content_hash": "0" * 64,
                       "sequence": 1, "counts": {"records": 1, "artifacts": 0}, "created_utc": "x",
                       "path": "knowledge_snapshot_20240101_000000"})
    line = st.one_of(st.text(max_size=80), json_values.map(json.dumps), st.just(good),
                     st.dictionaries(st.sampled_from(catalog.ENTRY_KEYS), json_values, min_size=6).map(json.dumps))

    @CHECK
    @given(st.lists(line, max_size=6), st.booleans())
    def prop(lines: list[str], torn: bool) -> None:
        count(chaos, "catalog")
        folder = tmp_path / "snaps"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        text = "\n".join(lines) + ("" if torn else "\n")
        (folder / "snapshot_catalog.jsonl").write_text(text, encoding="utf-8")
        entries, problems = catalog.read_catalog(folder)
        assert all(isinstance(e, dict) for e in entries)
        report = catalog.check_catalog(folder, quick=True)
        assert set(report) >= {"bundles", "problems", "ok", "leftovers"}
        assert report["ok"] == (not report["problems"])

    recorded(chaos, "catalog", prop)


def test_chain_lineage_checks_give_a_typed_error_or_accept(chaos, bundles):
    full = json.loads((bundles["full"] / "manifest.json").read_bytes())
    delta = json.loads((bundles["delta"] / "manifest.json").read_bytes())

    @CHECK
    @given(st.lists(st.tuples(st.sampled_from(["full", "delta"]), st.lists(st.integers(0, 50), max_size=3),
                              json_values, st.booleans()), min_size=1, max_size=4))
    def prop(spec) -> None:
        count(chaos, "chain")
        docs = []
        for i, (which, path, value, mutate) in enumerate(spec):
            doc = full if which == "full" else delta
            docs.append((f"b{i}", set_path(doc, path, value) if mutate else doc))
        try:
            delta_import.check_chain(docs)
        except ProcosError:
            return
        pristine = [d for _, d in docs] == [full, delta][:len(docs)]
        mutated = any(m for *_, m in spec)
        assert pristine or mutated  # an unmutated wrong order is always refused

    recorded(chaos, "chain", prop)


def test_verify_reports_any_changes_file_it_is_given(chaos, bundles, tmp_path):
    work = tmp_path / bundles["delta"].name
    shutil.copytree(bundles["delta"], work)
    original = (bundles["delta"] / "changes.jsonl").read_bytes()
    lines = original.splitlines(keepends=True)

    @CHECK
    @given(st.integers(0, 20), json_values, st.binary(max_size=60), st.booleans())
    def prop(at: int, value, raw: bytes, use_json: bool) -> None:
        count(chaos, "changes")
        new = list(lines)
        new[at % len(new)] = (json.dumps(value).encode() + b"\n") if use_json else raw
        data = b"".join(new)
        reseal(work, "changes.jsonl", data)
        report = verify_dir(work)
        assert report.ok == (data == original)

    recorded(chaos, "changes", prop)


# --- what the properties found, kept as plain regression tests ---------------------------------------


def test_catalog_lines_with_wrong_types_or_unsafe_paths_are_unreadable_lines(tmp_path):
    base = {"snapshot_id": "a", "kind": "full", "parent": None, "content_hash": "0" * 64, "sequence": 1,
            "counts": {}, "created_utc": "x", "path": "knowledge_snapshot_20240101_000000"}
    bad = [{**base, "snapshot_id": []}, {**base, "path": "../../etc"}, {**base, "kind": "delta"},
           {**base, "parent": "p"}, {**base, "sequence": "1"}]
    (tmp_path / "snapshot_catalog.jsonl").write_text("".join(json.dumps(b) + "\n" for b in bad))
    entries, problems = catalog.read_catalog(tmp_path)
    assert entries == [] and [p["code"] for p in problems] == ["unreadable_line"] * len(bad)
    assert catalog.check_catalog(tmp_path, quick=True)["ok"] is False


def test_a_chain_of_malformed_manifests_is_a_lineage_error(bundles):
    from engine.errors import LineageError

    full = json.loads((bundles["full"] / "manifest.json").read_bytes())
    delta = json.loads((bundles["delta"] / "manifest.json").read_bytes())
    delta_import.check_chain([("a", full), ("b", delta)])  # the real chain is accepted
    for broken in ({**delta, "parent": None}, {**delta, "base_sequence": "3"}, {**full, "snapshot_id": 7}, []):
        with pytest.raises(LineageError):
            delta_import.check_chain([("a", full), ("b", broken)])
