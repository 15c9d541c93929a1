"""ProcOS Knowledge Engine: move a vector knowledge layer between stores without losing anything."""

__version__ = "0.1.0"
