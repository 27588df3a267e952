"""Imports the workflow zoo of the test app as ``zoo`` (the app directory is not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).parent / "apps" / "workflows" / "zoo.py"


def _load():  # type: ignore[no-untyped-def]
    existing = sys.modules.get("zoo")
    if existing is not None:
        return existing
    spec = importlib.util.spec_from_file_location("zoo", _PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["zoo"] = module
    spec.loader.exec_module(module)
    return module


zoo = _load()
