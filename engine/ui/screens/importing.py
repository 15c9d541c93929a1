"""``Import``: upload a bundle or pick a listed one, choose a target and mode, check it, then ``Import``.

Checking starts the ``check_import`` process (verification of every byte and the signature, then the
import plan, a dry run that writes nothing); the page shows both before the ``Import`` button, which
starts ``import_snapshot`` with the same request. Both run in background runners; the page follows
them through ``?check=ID`` and ``?instance=ID`` in its URL. An upload is streamed to a private file
under the uploads folder (size-limited by ``upload_limit_mb``) and removed when its check fails.
"""

from __future__ import annotations

import streamlit as st

from engine import api
from engine.api import panel, processes
from engine.errors import ProcosError

from .. import follow
from ..look import age, short_hash, size

CHUNK = 1 << 20


def _save_upload(who, uploaded, kind: str, limit: int) -> str | None:
    chunks = iter(lambda: uploaded.read(CHUNK), b"")
    try:
        return panel.receive_upload(who.name, uploaded.name, chunks, limit_bytes=limit, kind=kind)
    except ProcosError as exc:
        st.error(exc.message)
        if exc.hint:
            st.caption(f"Try: {exc.hint}")
        return None


def _upload(who, cfg: dict) -> tuple[str | None, str | None]:
    """The uploaded bundle's path (and identity file's) on disk, once the browser sent them."""
    n = st.session_state.setdefault("upload_round", 0)
    limit = cfg["upload_limit_mb"] * 1024 * 1024
    bundle = st.file_uploader(f"Bundle (.tar.zst or .age, at most {cfg['upload_limit_mb']} MiB)",
                              key=f"bundle_upload_{n}")
    identity = st.file_uploader("Age identity file (only for an .age bundle)", key=f"identity_upload_{n}")
    if bundle is not None:
        saved = _save_upload(who, bundle, "bundle", limit)
        key = None
        if identity is not None:
            key = _save_upload(who, identity, "identity", 64 * 1024)
        if saved:
            st.session_state["uploaded"] = {"bundle": saved, "identity": key, "name": bundle.name}
        st.session_state["upload_round"] = n + 1  # a new widget: Streamlit drops the bytes it held
        st.rerun()
    done = st.session_state.get("uploaded")
    if done:
        st.success(f"Uploaded {done['name']} ({size(_size(done['bundle']))}).")
        return done["bundle"], done.get("identity")
    return None, None


def _size(path: str) -> int | None:
    try:
        return api.bundle_size(path)
    except OSError:
        return None


def _pick(cfg: dict) -> str | None:
    listed = []
    for loc in cfg["locations"]:
        try:
            listed += api.list_snapshots(loc)
        except ProcosError as exc:
            st.warning(f"{loc}: {exc.message}")
    if not listed:
        st.info("No bundles in the configured locations.")
        return None
    labels = {f"{e['name']} · {e.get('record_count')} records · {age(e.get('created_utc'))} old · {e['location']}":
              e["location"] for e in listed}
    return labels[st.selectbox("Bundle", list(labels))]


def _request(who, cfg: dict) -> None:
    how = st.radio("Bundle", ["Upload a bundle", "Pick a listed bundle"], horizontal=True, label_visibility="collapsed")
    bundle, identity = _upload(who, cfg) if how == "Upload a bundle" else (_pick(cfg), None)
    names = [s["name"] for s in cfg["stores"]]
    target = st.selectbox("Target store", names, index=0) if names else None
    mode = st.radio("Mode", ["append", "replace"], horizontal=True)
    on_conflict = st.selectbox("On conflict (append)", ["version", "error", "keep", "overwrite"], index=0)
    if st.button("Check bundle", disabled=not (bundle and target)):
        uri = next(s["uri"] for s in cfg["stores"] if s["name"] == target)
        variables = {"bundle": bundle, "target": uri, "mode": mode, "on_conflict": on_conflict}
        if identity:
            variables["identity"] = identity
        try:
            started = processes.start_process("check_import", variables, actor=who, wait=False)
        except ProcosError as exc:
            st.error(api.redact(exc.message))
            return
        st.session_state.pop("uploaded", None)
        st.query_params["check"] = started["instance_id"]
        st.query_params.pop("instance", None)
        st.rerun()


def _verification(data: dict) -> None:
    v = data.get("verification") or {}
    sig = v.get("signature") or {}
    st.subheader("Verification")
    cols = st.columns(4)
    cols[0].metric("Checksums", "pass" if v.get("ok") else "FAIL")
    cols[1].metric("Signature", sig.get("status") or "-")
    cols[2].metric("Records", v.get("record_count") if v.get("record_count") is not None else "-")
    cols[3].metric("Content hash", short_hash(v.get("content_hash"), 10))
    if v.get("errors"):
        st.dataframe(v["errors"], hide_index=True)
        if v.get("error_count", 0) > len(v["errors"]):
            st.caption(f"… and {v['error_count'] - len(v['errors'])} more problems")


def _plan(data: dict) -> None:
    plan = data.get("plan") or {}
    st.subheader("Import plan (dry run)")
    keys = [k for k in plan if k.startswith("would_")] or []
    if keys:
        st.table({k.replace("_", " "): [plan[k]] for k in keys})
    rest = {k: v for k, v in plan.items() if not k.startswith("would_") and not isinstance(v, dict | list)}
    if rest:
        st.json(rest, expanded=False)


def _checked(who, check_id: str) -> None:
    shown = processes.show_instance(check_id)
    if shown["state"] == "running":
        follow.follow(check_id)
        return
    data = shown.get("data") or {}
    st.markdown(f"**Bundle** `{api.redact(str(data.get('bundle')))}` → **target** `{api.redact(str(data.get('target')))}` "
                f"({data.get('mode')}, on conflict {data.get('on_conflict')})")
    if shown["state"] != "completed":
        st.error(api.redact(shown.get("error") or f"the check is {shown['state']}"))
        return
    _verification(data)
    if not data.get("passed"):
        st.error(f"Refused: {data.get('refusal')}")
        bundle = str(data.get("bundle") or "")
        if bundle and panel.is_upload(bundle):
            if panel.remove_upload(bundle):
                st.caption("The uploaded file was removed.")
        return
    _plan(data)
    if st.button("Import", type="primary"):
        variables = {k: data[k] for k in ("bundle", "target", "mode", "on_conflict", "identity") if data.get(k)}
        try:
            started = processes.start_process("import_snapshot", variables, actor=who, wait=False)
        except ProcosError as exc:
            st.error(api.redact(exc.message))
            return
        st.query_params["instance"] = started["instance_id"]
        st.rerun()


def render(who) -> None:
    st.title("Import")
    try:
        cfg = panel.panel_config()
    except ProcosError as exc:
        st.error(exc.message)
        return
    check_id, import_id = st.query_params.get("check"), st.query_params.get("instance")
    if import_id:
        follow.follow(import_id)
        if st.button("Start another import"):
            st.query_params.clear()
            st.rerun()
        return
    if check_id:
        try:
            _checked(who, check_id)
        except ProcosError as exc:
            st.error(exc.message)
        if st.button("Check another bundle"):
            st.query_params.clear()
            st.rerun()
        return
    _request(who, cfg)
