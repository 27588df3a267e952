"""The local host stands alone: importing it loads none of the library's dependencies.

The library's public names still import as before; they just load on first use (PEP 562).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys

import pytest
from hosttools.host_process import REPO

import durableagent

DEVHOST = REPO / "durableagent" / "devhost"
# The library's heavy dependencies: the host must not import them.
LIBRARY_ONLY_MODULES = ("agent_framework", "openai", "pydantic", "jsonschema")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


# Import isolation ---------------------------------------------------------------------------------


def test_importing_the_host_loads_no_library_dependency() -> None:
    code = (
        "import durableagent.devhost, durableagent.devhost._host, durableagent.devhost._cli, sys\n"
        f"print(sorted(m for m in {LIBRARY_ONLY_MODULES!r} if m in sys.modules))\n"
        "print(sorted(m for m in sys.modules if m.startswith('durableagent.') "
        "and not m.startswith('durableagent.devhost')))"
    )
    result = _run("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "[]"], result.stdout


def test_running_the_host_module_loads_no_library_dependency() -> None:
    # -X importtime lists every module imported by `python -m durableagent.devhost`, one per line.
    result = _run("-X", "importtime", "-m", "durableagent.devhost", "--help")
    assert result.returncode == 0, result.stderr
    assert "--app-dir" in result.stdout
    lines = result.stderr.splitlines()
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")}
    assert "durableagent.devhost._host" in imported  # the listing is what we think it is
    assert sorted({m.split(".")[0] for m in imported} & set(LIBRARY_ONLY_MODULES)) == []


def test_public_names_load_on_first_use() -> None:
    code = (
        "import sys, durableagent\n"
        "before = 'agent_framework' in sys.modules\n"
        "from durableagent import AgentFunctionApp\n"
        "print(before, 'agent_framework' in sys.modules, AgentFunctionApp.__module__)"
    )
    result = _run("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "durableagent._app"]


def test_the_host_imports_nothing_else_from_durableagent() -> None:
    # DESIGN §2: the host runs anyone's app, so it must not depend on the library around it.
    for path in sorted(DEVHOST.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1, f"{path.name} imports from outside durableagent.devhost"
                module = node.module or ""
            elif isinstance(node, ast.Import):
                module = " ".join(alias.name for alias in node.names)
            else:
                continue
            for name in module.split():
                assert name.split(".")[0] != "durableagent" or name.startswith("durableagent.devhost"), (
                    f"{path.name} imports {name}"
                )


# The lazy public surface --------------------------------------------------------------------------


def test_public_names_import_as_before() -> None:
    from durableagent import AgentFunctionApp, AgentSchedule, BlobCheckpointStorage, chat_client_from_settings
    from durableagent._app import AgentFunctionApp as defined_app

    assert AgentFunctionApp is defined_app
    assert AgentSchedule.__module__ == "durableagent._background"
    assert BlobCheckpointStorage.__module__ == "durableagent._workflow_store"
    assert callable(chat_client_from_settings)
    for name in durableagent.__all__:
        module = importlib.import_module(durableagent._MODULES[name], "durableagent")
        assert getattr(durableagent, name) is getattr(module, name), name


def test_dir_lists_every_public_name() -> None:
    assert set(durableagent.__all__) <= set(dir(durableagent))
    assert dir(durableagent) == sorted(dir(durableagent))


def test_unknown_names_raise_attribute_error_and_submodules_still_import() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = durableagent.NoSuchThing  # type: ignore[attr-defined]
    assert not hasattr(durableagent, "NoSuchThing")
    from durableagent import _window  # a submodule, not a public name: the import system's fallback

    assert _window.__name__ == "durableagent._window"


def test_the_type_checking_imports_match_the_lazy_table() -> None:
    # mypy and IDEs read the TYPE_CHECKING imports; run time reads _MODULES: one must not drift from the other.
    tree = ast.parse((REPO / "durableagent" / "__init__.py").read_text())
    guarded = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
    )
    seen = {
        alias.name: "." + (node.module or "")
        for node in guarded.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert seen == durableagent._MODULES
    assert sorted(seen) == sorted(durableagent.__all__)
