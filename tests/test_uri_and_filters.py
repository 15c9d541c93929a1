"""Unit tests for store URIs, settings resolution and metadata filters.

Filter SQL is executed on real engines (SQLite JSON1 and the session's PostgreSQL ``jsonb``) and
compared with :func:`engine.repository.filters.matches`, the reference semantics.
"""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import InvalidFilter, InvalidURI, SettingsMismatch
from engine.repository import StoreSettings, parse_uri, redact, requested_settings, resolve_settings
from engine.repository.filters import matches, normalize, postgres_where, sqlite_where

# --- URIs -----------------------------------------------------------------------------------------


def test_faiss_uri_gives_an_absolute_directory_and_options(tmp_path):
    uri = parse_uri(f"faiss:{tmp_path}/store?metric=l2&index=flat&dim=16")
    assert uri.scheme == "faiss"
    assert uri.location == str(tmp_path / "store")
    assert uri.options == {"metric": "l2", "index": "flat", "dimensions": "16"}


def test_relative_and_double_slash_faiss_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_uri("faiss:./s").location == str(tmp_path / "s")
    assert parse_uri(f"faiss://{tmp_path}/s").location == str(tmp_path / "s")


def test_embedded_uri_keeps_table_option(tmp_path):
    uri = parse_uri(f"postgresql+embedded:{tmp_path}/pg?table=kb_main&metric=cosine")
    assert (uri.scheme, uri.location, uri.table) == ("postgresql+embedded", str(tmp_path / "pg"), "kb_main")
    assert parse_uri(f"postgresql+embedded:{tmp_path}/pg").table == "embeddings"


def test_postgres_uri_removes_store_options_and_keeps_libpq_parameters():
    uri = parse_uri("postgresql://u:secret@db.example:5433/kb?sslmode=require&table=vecs&index=flat"
                    "&ef_search=80&host=/run/pg")
    assert uri.scheme == "postgresql"
    assert uri.options == {"table": "vecs", "index": "flat", "ef_search": "80"}
    assert "table=" not in uri.location and "index=" not in uri.location
    assert "sslmode=require" in uri.location and "host=%2Frun%2Fpg" in uri.location
    assert uri.location.startswith("postgresql://u:secret@db.example:5433/kb")
    assert "secret" not in uri.text
    assert parse_uri("postgres://h/db").scheme == "postgresql"


def test_redact_hides_only_the_password():
    assert redact("postgresql://u:secret@h:5432/db?x=1") == "postgresql://u:***@h:5432/db?x=1"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact("faiss:/tmp/s") == "faiss:/tmp/s"


def test_uri_comes_from_vector_endpoint_when_none_given(monkeypatch, tmp_path):
    monkeypatch.setenv("VECTOR_ENDPOINT", f"faiss:{tmp_path}/env")
    assert parse_uri(None).location == str(tmp_path / "env")
    monkeypatch.delenv("VECTOR_ENDPOINT")
    with pytest.raises(InvalidURI, match="VECTOR_ENDPOINT"):
        parse_uri(None)


@pytest.mark.parametrize("text", [
    "", "nonsense", "s3://bucket/x", "faiss:", "faiss:/x?colour=red", "faiss:/x?metric=dot",
    "faiss:/x?index=ivf", "postgresql+embedded:/x?table=Bad-Name", "postgresql://h/db?table=1abc",
    "faiss:/x?dimensions=0", "faiss:/x?dim=-3", "faiss:/x?m=abc", "faiss:/x?ef_search=1.5",
])
def test_invalid_uri_is_refused(text):
    with pytest.raises(InvalidURI):
        parse_uri(text)


def test_invalid_uri_message_hides_password():
    with pytest.raises(InvalidURI) as info:
        parse_uri("postgresql://u:hunter2@h/db?metric=dot")
    assert "hunter2" not in str(info.value)


# --- settings -------------------------------------------------------------------------------------


def test_requested_settings_merge_uri_and_keywords():
    parsed = parse_uri("faiss:/x?metric=l2&m=8")
    got = requested_settings(parsed, dimensions=4, metric=None, index="flat", index_params={"ef_search": 99})
    assert got == {"metric": "l2", "dimensions": 4, "index": "flat", "index_params": {"m": 8, "ef_search": 99}}
    assert requested_settings(parsed, metric="l2") == {"metric": "l2", "index_params": {"m": 8}}


@pytest.mark.parametrize("kwargs", [{"metric": "cosine"}, {"index_params": {"m": 16}}, {"dimensions": 5}])
def test_requested_settings_refuse_a_keyword_that_contradicts_the_uri(kwargs):
    with pytest.raises(SettingsMismatch):
        requested_settings(parse_uri("faiss:/x?metric=l2&m=8&dimensions=4"), **kwargs)


def test_resolve_settings_for_a_new_store_uses_defaults_and_wanted():
    new = resolve_settings(None, {"metric": "l2", "index_params": {"m": 8}}, "store")
    assert (new.dimensions, new.metric, new.index) == (None, "l2", "hnsw")
    assert new.index_params == {"m": 8, "ef_construction": 128, "ef_search": 40}


def test_resolve_settings_for_an_existing_store_prefers_the_stored_and_refuses_contradictions():
    stored = StoreSettings(dimensions=8, metric="cosine", index="hnsw",
                           index_params={"m": 16, "ef_construction": 64, "ef_search": 40})
    assert resolve_settings(stored, {}, "s") == stored
    assert resolve_settings(stored, {"metric": "cosine", "dimensions": 8}, "s") == stored
    assert resolve_settings(stored, {"index_params": {"ef_search": 100}}, "s").index_params["ef_search"] == 100
    for wanted in ({"metric": "l2"}, {"dimensions": 9}, {"index": "flat"}, {"index_params": {"m": 32}}):
        with pytest.raises(SettingsMismatch):
            resolve_settings(stored, wanted, "s")
    empty = StoreSettings(dimensions=None, metric="l2", index="flat")
    assert resolve_settings(empty, {"dimensions": 12}, "s").dimensions == 12


# --- filters: validation and reference semantics --------------------------------------------------


def test_normalize_sorts_fields_and_expands_equality():
    assert normalize(None) == [] and normalize({}) == []
    assert normalize({"b": 1, "a": {"$in": ["x", None]}}) == [("a", ("x", None)), ("b", (1,))]


@pytest.mark.parametrize("bad", [
    "lang=en", ["lang"], {"x": {"$gt": 1}}, {"x": {"$in": []}}, {"x": {"$in": "ab"}}, {"x": [1]},
    {"x": {"y": 1}}, {"": 1}, {'a"b': 1}, {"a\\b": 1}, {"x": float("nan")}, {"x": float("-inf")},
    {"x": {"$in": [1, [2]]}}, {1: 1}, {"x": {"$in": [1], "$eq": 1}},
], ids=repr)
def test_normalize_refuses_malformed_filters(bad):
    with pytest.raises(InvalidFilter):
        normalize(bad)


@pytest.mark.parametrize("metadata, flt, expected", [
    ({"v": 1}, {"v": 1.0}, True),
    ({"v": 1.0}, {"v": 1}, True),
    ({"v": True}, {"v": 1}, False),
    ({"v": 1}, {"v": True}, False),
    ({"v": 0}, {"v": False}, False),
    ({"v": "1"}, {"v": 1}, False),
    ({"v": None}, {"v": None}, True),
    ({}, {"v": None}, False),
    ({"w": 1}, {"v": 1}, False),
    ({"v": [1]}, {"v": 1}, False),
    ({"v": {"a": 1}}, {"v": 1}, False),
    ({"v": "en", "t": 2}, {"v": "en", "t": 2}, True),
    ({"v": "en", "t": 3}, {"v": "en", "t": 2}, False),
    ({"v": "de"}, {"v": {"$in": ["en", "de"]}}, True),
    ({"v": 2.0}, {"v": {"$in": [True, 2]}}, True),
])
def test_matches_is_json_equality(metadata, flt, expected):
    assert matches(metadata, normalize(flt)) is expected


# --- property: the SQL renderings agree with the reference ----------------------------------------

SCALARS = st.one_of(st.sampled_from(["en", "de", "é", "1", "true", "", 1, 1.0, 2, 0, -3, 2.5, True, False, None]),
                    st.integers(-5, 5), st.floats(-3, 3, allow_nan=False).map(lambda f: round(f, 1)))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=2), st.dictionaries(st.sampled_from(["a", "v"]),
                                                                            SCALARS, max_size=1))
FIELDS = st.sampled_from(["a", "b", "é", "with space", "x.y"])
METADATA = st.dictionaries(FIELDS, VALUES, max_size=3)
CONDITION = st.one_of(SCALARS, st.fixed_dictionaries({"$in": st.lists(SCALARS, min_size=1, max_size=3)}))
FILTER = st.dictionaries(FIELDS, CONDITION, max_size=3)


def canonical(meta):
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(METADATA, min_size=1, max_size=10), flt=FILTER)
def test_sqlite_where_agrees_with_matches(rows, flt):
    clauses = normalize(flt)
    where, params = sqlite_where(clauses)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (i INTEGER, metadata TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, canonical(m)) for i, m in enumerate(rows)])
    got = {i for (i,) in conn.execute(f"SELECT i FROM t WHERE {where}", params)}
    conn.close()
    assert got == {i for i, m in enumerate(rows) if matches(m, clauses)}


@pytest.fixture(scope="module")
def pg_conn(pg_dsn):
    psycopg = pytest.importorskip("psycopg")
    conn = psycopg.connect(pg_dsn, autocommit=True)
    yield conn
    conn.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(METADATA, min_size=1, max_size=10), flt=FILTER)
def test_postgres_where_agrees_with_matches(pg_conn, rows, flt):
    clauses = normalize(flt)
    where, params = postgres_where(clauses)
    values = ", ".join(["(%s, %s::jsonb)"] * len(rows))
    flat = [x for i, m in enumerate(rows) for x in (i, canonical(m))]
    sql = f"SELECT i FROM (VALUES {values}) AS t(i, metadata) WHERE {where}"
    got = {i for (i,) in pg_conn.execute(sql, [*flat, *params])}
    assert got == {i for i, m in enumerate(rows) if matches(m, clauses)}


def test_pg_dsn_fixture_is_a_libpq_uri(pg_dsn):
    assert pg_dsn.startswith("postgresql://")
    if not os.environ.get("PROCOS_TEST_PG_DSN"):
        assert "host=" in pg_dsn
