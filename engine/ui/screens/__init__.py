"""The panel's pages (not "pages/": Streamlit would run such a folder as scripts), one module each; each has ``render(who)`` for the logged-in Identity ``who``."""
