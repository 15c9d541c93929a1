"""Synthetic data is deterministic, valid, and independent of how it is batched."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.records import validate_batch
from engine.repository.artifacts import check_artifact_path
from engine.synthetic import synthetic_artifacts, synthetic_batches

BPMN_NS = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"


def concat(count: int, dim: int, seed: int, batch_size: int):
    batches = list(synthetic_batches(count, dim, seed=seed, batch_size=batch_size))
    assert all(len(b) <= batch_size for b in batches)
    return (
        [i for b in batches for i in b.ids],
        np.concatenate([b.vectors for b in batches]) if batches else np.zeros((0, dim), np.float32),
        [m for b in batches for m in b.metadata],
        [h for b in batches for h in b.source_hashes],
        np.concatenate([b.created_us for b in batches]) if batches else np.zeros(0, np.int64),
    )


@settings(max_examples=25, deadline=None)
@given(count=st.integers(0, 120), dim=st.integers(1, 9), seed=st.integers(0, 2**32 - 1),
       batch_size=st.integers(1, 130))
def test_records_do_not_depend_on_batch_size(count, dim, seed, batch_size):
    ids, vecs, meta, hashes, created = concat(count, dim, seed, batch_size)
    ids2, vecs2, meta2, hashes2, created2 = concat(count, dim, seed, 10_000)
    assert ids == ids2 and meta == meta2 and hashes == hashes2
    assert np.array_equal(vecs, vecs2) and np.array_equal(created, created2)


def test_batches_are_valid_sorted_and_never_zero():
    batches = list(synthetic_batches(2_500, 8, seed=7, batch_size=1_000))
    assert [len(b) for b in batches] == [1_000, 1_000, 500]
    ids = [i for b in batches for i in b.ids]
    assert ids[0] == "rec-0000001" and ids[-1] == "rec-0002500"
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for b in batches:
        validate_batch(b, dimensions=8, metric="cosine")  # canonical JSON, finite, not all-zero
        assert b.vectors.dtype == np.float32 and b.vectors.flags.c_contiguous
        assert (b.versions == 1).all() and (b.created_us == b.updated_us).all()
        assert all(len(h) == 64 for h in b.source_hashes)
        meta = [json.loads(m) for m in b.metadata]
        assert {m["lang"] for m in meta} <= {"en", "de", "fr", "es"}
        assert {m["tier"] for m in meta} <= {1, 2, 3, 4, 5}


def test_different_seeds_give_different_vectors():
    a = next(synthetic_batches(50, 4, seed=1))
    b = next(synthetic_batches(50, 4, seed=2))
    assert a.ids == b.ids and not np.array_equal(a.vectors, b.vectors)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        next(synthetic_batches(10, 0))


def test_artifacts_are_deterministic_with_valid_paths():
    files = synthetic_artifacts(seed=3)
    assert files == synthetic_artifacts(seed=3)
    assert files != synthetic_artifacts(seed=4)
    for path in files:
        check_artifact_path(path)
    kinds = [p.partition("/")[0] for p in files]
    assert kinds.count("bpmn") == 3 and kinds.count("prompts") >= 2
    for kind in ("patterns", "examples", "domains", "logs"):
        assert kinds.count(kind) == 1


def test_artifact_contents_parse():
    files = synthetic_artifacts()
    for path, data in files.items():
        if path.endswith(".yaml"):
            assert isinstance(yaml.safe_load(data), dict)
        elif path.endswith(".jsonl"):
            rows = [json.loads(line) for line in data.decode().splitlines()]
            assert rows and all(isinstance(r, dict) for r in rows)


def test_bpmn_artifacts_are_bpmn_processes():
    for path, data in synthetic_artifacts().items():
        if not path.startswith("bpmn/"):
            continue
        root = ET.fromstring(data)
        assert root.tag == f"{BPMN_NS}definitions"
        process = root.find(f"{BPMN_NS}process")
        pid = path.removeprefix("bpmn/").rsplit("_v", 1)[0]
        assert process is not None and process.get("id") == pid
        ids = {el.get("id") for el in process}
        flows = process.findall(f"{BPMN_NS}sequenceFlow")
        assert process.find(f"{BPMN_NS}startEvent") is not None
        assert process.find(f"{BPMN_NS}endEvent") is not None
        assert process.findall(f"{BPMN_NS}task")
        assert flows and all(f.get("sourceRef") in ids and f.get("targetRef") in ids for f in flows)


def test_bpmn_artifacts_run_in_spiffworkflow():
    from lxml import etree
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.parser import BpmnParser
    from SpiffWorkflow.util.task import TaskState

    for path, data in synthetic_artifacts().items():
        if not path.startswith("bpmn/"):
            continue
        parser = BpmnParser()
        parser.add_bpmn_xml(etree.fromstring(data), filename=path)
        pid = path.removeprefix("bpmn/").rsplit("_v", 1)[0]
        workflow = BpmnWorkflow(parser.get_spec(pid))
        workflow.do_engine_steps()
        for _ in range(20):  # plain bpmn:task is a manual task: complete each one as a person would
            ready = workflow.get_tasks(state=TaskState.READY)
            if not ready:
                break
            ready[0].run()
            workflow.do_engine_steps()
        assert workflow.is_completed(), path

