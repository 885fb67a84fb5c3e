"""Example sdscm-bench adapter package (see ``adapter.py``; registered in ``pyproject.toml``)."""
