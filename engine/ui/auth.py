"""Logging in and out: a form against the user store; the session holds the Identity, never a password.

The password goes from the form straight to :func:`engine.api.processes.login` and is not kept (the form
clears on submit, so it is never sent back to the browser). Failed logins are rate-limited and audited
by the api, per user name and per client address. On every page view the identity is read again from
the user store, so a removed user is logged out and changed roles apply at once.
"""

from __future__ import annotations

import streamlit as st

from engine.api import processes
from engine.errors import ProcosError

KEY = "procos_identity"


def current():
    """The logged-in Identity (refreshed from the user store), or None."""
    who = st.session_state.get(KEY)
    if who is None:
        return None
    fresh = processes.refresh_identity(who)
    if fresh is None:
        st.session_state.pop(KEY, None)
        return None
    st.session_state[KEY] = fresh
    return fresh


def client_address() -> str | None:
    try:
        address = st.context.ip_address
    except Exception:  # noqa: BLE001 - no request context (AppTest): no client address to limit by
        return None
    return address if isinstance(address, str) and address else None


def login_form() -> None:
    """The login page: ``User``, ``Password``, ``Log in``."""
    st.title("ProcOS migration panel")
    st.caption("Log in with your procos user name and the password set with `procos user passwd NAME`.")
    with st.form("login", clear_on_submit=True):
        name = st.text_input("User", key="login_user")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if not submitted:
        return
    if not name or not password:
        st.error("Enter your user name and password.")
        return
    try:
        who = processes.login(name.strip(), password, client=client_address())
    except ProcosError as exc:
        st.error(exc.message)
        if exc.hint:
            st.caption(f"Try: {exc.hint}")
        return
    if who is None:
        st.error("Login failed: wrong user name or password.")
        return
    st.session_state[KEY] = who
    st.rerun()


def logout_button(who) -> None:
    with st.sidebar:
        st.markdown(f"**{who.name}**  \n{', '.join(sorted(who.roles)) or 'no roles'}")
        if st.button("Log out", key="logout"):
            st.session_state.pop(KEY, None)
            st.rerun()
