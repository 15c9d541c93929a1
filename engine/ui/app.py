"""The panel's Streamlit script (``procos ui`` runs it): log in, then the pages in the navigation.

Nothing but the login form is drawn until someone has logged in; each page gets the logged-in
Identity and passes it as ``actor=`` to the api, so the panel gives a user exactly the CLI's rights.
"""

from __future__ import annotations

import streamlit as st

from engine.ui import auth
from engine.ui.screens import approvals, catalog, drills, export, importing, instances, overview, validation

PAGES = (("Overview", "overview", overview), ("Export", "export", export), ("Import", "import", importing),
         ("Approvals", "approvals", approvals), ("Instances", "instances", instances), ("Catalog", "catalog", catalog),
         ("Drills", "drills", drills), ("Validation", "validation", validation))


def _page(title: str, path: str, module, who) -> st.Page:
    def draw() -> None:
        module.render(who)

    draw.__name__ = f"page_{path}"
    return st.Page(draw, title=title, url_path=path, default=path == "overview")


def main() -> None:
    st.set_page_config(page_title="ProcOS migration panel", layout="wide")
    who = auth.current()
    if who is None:
        auth.login_form()
        return
    auth.logout_button(who)
    st.navigation([_page(title, path, module, who) for title, path, module in PAGES]).run()


main()
