"""Deterministic synthetic data: embedding batches and a knowledge-artifact set for seeding stores.

The same arguments always give the same bytes. Record ``i`` does not depend on ``batch_size``:
vectors, metadata choices and cluster centres each come from their own generator, seeded once
from ``seed`` and drawn in record order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import numpy as np

from engine.records import RecordBatch, canonical_json, make_batch

LANGS = ("en", "de", "fr", "es")
TOPICS = ("billing", "onboarding", "compliance", "logistics", "support", "security", "hr",
          "procurement", "analytics", "legal")
BASE_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z in microseconds
CHUNKS_PER_DOC = 4


def record_id(i: int, width: int = 7) -> str:
    """The id of synthetic record ``i`` (0-based): ``rec-0000001`` for i=0; string order = numeric order."""
    return f"rec-{i + 1:0{width}d}"


def synthetic_batches(count: int, dim: int, seed: int = 0, batch_size: int = 10_000) -> Iterator[RecordBatch]:
    """``count`` records of ``dim`` float32 dimensions in ascending id order, ``batch_size`` at a time.

    Vectors cluster around one centre per topic (so queries find related records) and are never
    all zero. Metadata is canonical JSON ``{"doc", "lang", "tier", "topic"}``; version 1;
    ``source_hash`` is the sha256 of the chunk's source text; timestamps are a fixed base time plus
    ``i`` seconds.
    """
    if count < 0 or dim <= 0 or batch_size <= 0:
        raise ValueError(f"need count >= 0, dim > 0 and batch_size > 0 (got {count}, {dim}, {batch_size})")
    width = max(7, len(str(count)))
    vec_rng = np.random.default_rng([seed, 0])
    meta_rng = np.random.default_rng([seed, 1])
    centres = np.random.default_rng([seed, 2]).standard_normal((len(TOPICS), dim), dtype=np.float32)
    for start in range(0, count, batch_size):
        n = min(batch_size, count - start)
        idx = np.arange(start, start + n, dtype=np.int64)
        # one draw per batch, row-major, so record i gets the same values whatever the batching
        topics, langs, tiers = meta_rng.integers((0, 0, 1), (len(TOPICS), len(LANGS), 6), size=(n, 3)).T
        vectors = vec_rng.standard_normal((n, dim), dtype=np.float32)
        vectors *= np.float32(0.5)
        vectors += centres[topics]
        zero = ~np.any(vectors != 0, axis=1)
        if zero.any():
            vectors[zero, 0] = 1.0
        ids = [record_id(int(i), width) for i in idx]
        metadata = [canonical_json({"doc": f"doc-{int(i) // CHUNKS_PER_DOC}", "lang": LANGS[lg],
                                    "tier": int(t), "topic": TOPICS[tp]})
                    for i, lg, t, tp in zip(idx, langs, tiers, topics, strict=True)]
        hashes = [hashlib.sha256(f"seed {seed} chunk {rid} of {m}".encode()).hexdigest()
                  for rid, m in zip(ids, metadata, strict=True)]
        created = BASE_US + idx * 1_000_000
        yield make_batch(ids=ids, vectors=vectors, metadata=metadata, versions=np.ones(n, np.int64),
                         source_hashes=hashes, created_us=created, updated_us=created.copy(), validate=False)


# --- knowledge artifacts -------------------------------------------------------------------------

PROCESSES = {
    "invoice_approval": (1, ["Capture invoice", "Check purchase order", "Approve payment"]),
    "customer_onboarding": (2, ["Collect documents", "Verify identity", "Open account", "Send welcome"]),
    "incident_triage": (1, ["Classify incident", "Assign responder"]),
}
PROMPTS = {
    "summarize_process": (1, "Summarize the business process below in at most {max_words} words."),
    "classify_domain": (2, "Name the domain of this text. Answer with one of: {domains}."),
    "extract_steps": (1, "List the steps of the procedure below as a numbered list."),
}
PATTERNS = ("sequence", "exclusive_choice", "parallel_split", "approval_loop", "escalation")


def bpmn_xml(process_id: str, tasks: list[str]) -> bytes:
    """A small, valid, executable BPMN 2.0 process: start -> tasks in sequence -> end."""
    nodes = [("StartEvent_1", "startEvent", "Start")]
    nodes += [(f"Task_{n}", "task", name) for n, name in enumerate(tasks, 1)]
    nodes.append(("EndEvent_1", "endEvent", "Done"))
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
             f'id="Definitions_{process_id}" targetNamespace="http://procos.example/bpmn">',
             f'  <bpmn:process id="{process_id}" name="{process_id.replace("_", " ").title()}" '
             'isExecutable="true">']
    for k, (node_id, tag, name) in enumerate(nodes):
        inc = f"<bpmn:incoming>Flow_{k}</bpmn:incoming>" if k > 0 else ""
        out = f"<bpmn:outgoing>Flow_{k + 1}</bpmn:outgoing>" if k < len(nodes) - 1 else ""
        lines.append(f'    <bpmn:{tag} id="{node_id}" name="{name}">{inc}{out}</bpmn:{tag}>')
    for k in range(1, len(nodes)):
        lines.append(f'    <bpmn:sequenceFlow id="Flow_{k}" sourceRef="{nodes[k - 1][0]}" '
                     f'targetRef="{nodes[k][0]}" />')
    lines += ["  </bpmn:process>", "</bpmn:definitions>", ""]
    return "\n".join(lines).encode()


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(canonical_json(r) + "\n" for r in rows).encode()


def synthetic_artifacts(seed: int = 0) -> dict[str, bytes]:
    """A realistic knowledge-artifact set (BPMN, prompts, patterns, examples, domains, logs).

    Paths satisfy :func:`engine.repository.artifacts.check_artifact_path`; the bytes depend only on
    ``seed``.
    """
    import yaml  # small, but only seeding needs it

    rng = np.random.default_rng([seed, 3])
    files: dict[str, bytes] = {}
    for pid, (version, tasks) in PROCESSES.items():
        files[f"bpmn/{pid}_v{version}.bpmn"] = bpmn_xml(pid, tasks)
    for name, (version, template) in PROMPTS.items():
        doc = {"name": name, "version": version, "model": "any-instruct",
               "temperature": round(float(rng.integers(0, 8)) / 10, 1), "template": template,
               "variables": sorted(re.findall(r"\{(\w+)\}", template))}
        files[f"prompts/{name}_v{version}.yaml"] = yaml.safe_dump(doc, sort_keys=True).encode()
    catalog = {"version": 1, "patterns": [
        {"id": p, "description": f"Workflow pattern '{p.replace('_', ' ')}'",
         "used_by": sorted(PROCESSES)[: int(rng.integers(1, len(PROCESSES) + 1))]} for p in PATTERNS]}
    files["patterns/pattern_catalog_v1.yaml"] = yaml.safe_dump(catalog, sort_keys=True).encode()
    examples = []
    for n in range(12):
        topic = TOPICS[int(rng.integers(0, len(TOPICS)))]
        examples.append({"id": f"ex-{n + 1:03d}", "domain": topic,
                         "pattern": PATTERNS[int(rng.integers(0, len(PATTERNS)))],
                         "input": f"How is a {topic} request handled?",
                         "output": f"A {topic} request follows the {topic} procedure, step by step."})
    files["examples/examples_v1.jsonl"] = _jsonl(examples)
    files["domains/domain_profiles.jsonl"] = _jsonl([
        {"domain": t, "languages": sorted(LANGS[: int(rng.integers(1, len(LANGS) + 1))]),
         "owner": f"team-{t}", "retention_days": int(rng.integers(30, 400))} for t in TOPICS])
    events = []
    paths = sorted(files)
    for n in range(20):
        events.append({"seq": n + 1, "ts_us": BASE_US + n * 60_000_000,
                       "event": ("generated", "reviewed", "published")[n % 3],
                       "artifact": paths[int(rng.integers(0, len(paths)))], "seed": seed})
    files["logs/generation_events.jsonl"] = _jsonl(events)
    return dict(sorted(files.items()))

