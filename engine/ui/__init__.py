"""The migration panel: a Streamlit web app over :mod:`engine.api` (``procos ui``).

One module per page under :mod:`engine.ui.screens`, plus the helpers they share: :mod:`.auth` (log in and
out against the user store), :mod:`.look` (formatting and green/amber/red badges), :mod:`.follow` (an
instance's progress, refreshed while it runs), :mod:`.diagram` (bpmn-js, served from ``static/``) and
:mod:`.server` (how ``procos ui`` starts Streamlit). Like the CLI, the panel reaches the engine only
through :mod:`engine.api` and :mod:`engine.api.processes`, acting as the logged-in user's Identity.
"""
