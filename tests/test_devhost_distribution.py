"""The local host stands alone: importing it loads none of the library's dependencies, and its own
distribution (``durableagent/devhost/pyproject.toml``) declares exactly what it imports.

The library's public names still import as before; they just load on first use (PEP 562).
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hosttools.host_process import REPO
from packaging.requirements import Requirement

import durableagent

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, published as tomli
    import tomli as tomllib

DEVHOST = REPO / "durableagent" / "devhost"
# The library's heavy dependencies: the host must neither import nor declare them.
LIBRARY_ONLY_MODULES = ("agent_framework", "openai", "pydantic", "jsonschema")
LIBRARY_ONLY_DISTRIBUTIONS = {"agent-framework-core", "agent-framework-openai", "openai", "pydantic", "jsonschema"}
# Declared without an import of its own today: DESIGN §5 has the host load apps through the real
# worker library on 3.13+.
DECLARED_FOR_THE_WORKER = {"azure-functions-runtime"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def _pyproject(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        return tomllib.load(handle)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _devhost_imports() -> dict[str, set[str]]:
    """Absolute module names imported anywhere under durableagent/devhost -> the files importing them."""
    found: dict[str, set[str]] = {}
    for path in sorted(DEVHOST.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name, set()).add(path.name)
    return found


def _distribution_of(module: str) -> str:
    """The installed distribution whose files hold ``module``.

    By file, not by top-level name: azure.functions, azure.core and azure.storage.queue share the
    ``azure`` namespace but come from three distributions.
    """
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, f"{module} is not installed in this venv"
    origin = Path(spec.origin).resolve()
    # Python 3.10's packages_distributions() reads only top_level.txt, which some wheels lack: then
    # every installed distribution is a candidate.
    candidates = importlib.metadata.packages_distributions().get(module.split(".")[0]) or [
        str(dist.metadata["Name"]) for dist in importlib.metadata.distributions()
    ]
    for name in dict.fromkeys(candidates):
        dist = importlib.metadata.distribution(name)
        if any(Path(str(dist.locate_file(file))).resolve() == origin for file in dist.files or ()):
            return _normalize(dist.metadata["Name"])
    raise AssertionError(f"no installed distribution lists {origin} ({module})")


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


# The host's own distribution ----------------------------------------------------------------------


def test_devhost_distribution_declares_every_third_party_import() -> None:
    project = _pyproject(DEVHOST / "pyproject.toml")["project"]
    # An extra counts: the host imports its modules only for the feature that needs them.
    extras = [r for group in project.get("optional-dependencies", {}).values() for r in group]
    declared = {_normalize(Requirement(r).name) for r in [*project["dependencies"], *extras]}
    third_party = {
        name: files for name, files in _devhost_imports().items() if name.split(".")[0] not in sys.stdlib_module_names
    }
    assert third_party, "the import scan found nothing: it is broken"
    needed = {_distribution_of(name) for name in third_party}
    assert needed - declared == set(), f"imported but not declared: {needed - declared}"
    assert declared - needed <= DECLARED_FOR_THE_WORKER, f"declared but not imported: {declared - needed}"
    assert declared & LIBRARY_ONLY_DISTRIBUTIONS == set()
    assert {name.split(".")[0] for name in third_party} & set(LIBRARY_ONLY_MODULES) == set()


def test_devhost_distribution_matches_the_main_one() -> None:
    root = _pyproject(REPO / "pyproject.toml")
    devhost = _pyproject(DEVHOST / "pyproject.toml")
    assert devhost["project"]["name"] == "durableagent-devhost"
    assert devhost["project"]["version"] == root["project"]["version"]
    assert devhost["project"]["requires-python"] == root["project"]["requires-python"]
    # Same ranges and markers as the library, so the two never disagree about the host's needs.
    library = {str(Requirement(r)) for r in root["project"]["dependencies"]}
    extras = [r for group in devhost["project"].get("optional-dependencies", {}).values() for r in group]
    for requirement in [*devhost["project"]["dependencies"], *extras]:
        assert str(Requirement(requirement)) in library, requirement
    assert devhost["project"]["scripts"] == root["project"]["scripts"]
    assert devhost["tool"]["setuptools"] == {
        "packages": ["durableagent.devhost"],
        "package-dir": {"durableagent.devhost": "."},
    }
