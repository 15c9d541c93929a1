"""The panel's pages, one module each; each has ``render(who)`` for the logged-in Identity ``who``."""
