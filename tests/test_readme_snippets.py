"""Every Python and HTTP snippet of ``README.md`` and ``samples/*/README.md`` runs, as a user would run it.

The Markdown is read block by block (fenced code) and each block gets a kind:

- ``python``: an app (it assigns ``app = AgentFunctionApp(...)``/``FunctionApp(...)``) is written to an app
  folder as ``function_app.py`` and served by the local host, then the HTTP snippets after it in the same
  README run against it; any other Python block runs as a module of its own. In a sample's README the app
  is the sample itself.
- ``bash`` with ``curl``: each command is sent to the local host serving the README's app (``localhost:7071``
  becomes the test host's address, ``<placeholders>`` are filled from the answers before them, as a user
  would fill them, and ``# then GET the <field> from the answer`` is followed). Every answer must be 2xx;
  an answer that only says "not yet" (202 to a GET, 404 or 409 while the state catches up) is repeated.
  The fields a ``# {...}`` comment or a ``<!-- snippet: response -->`` JSON block after it shows must come back.
- ``http`` blocks and each sample's ``demo.http`` (every sample README points to it): each request in
  order, REST Client's ``{{name.response.body.$.path}}`` resolved from the named answers; a status or error
  code the request's title names is the one expected, otherwise 2xx.
- ``bash`` without ``curl`` is a shell command (set-up, start, deploy) and not run here.

A block the runner cannot run must be marked just above its fence with ``<!-- snippet: ... -->``:
``excerpt of function_app.py`` (its lines must appear in that file, which is what ``./dev start`` serves and
the HTTP snippets after it run against), ``covered by tests/<file>.py::<Class>::<test>`` (that test runs the
same thing), or ``script in the app folder; <literal> is a <field>`` (a script run beside the sample's
``function_app.py`` after its HTTP snippets, the literal replaced by that field of an answer). A new block of
a kind the runner does not know fails ``test_every_snippet_is_run_or_covered``.

Models: README apps use the real OpenAI client against a local fake server (``FakeOpenAIServer``, through
``OPENAI_BASE_URL``); the root app and the samples run on the offline model, as on a fresh machine. Nothing
here reaches the internet.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import AzuriteInstance
from hosttools.host_process import REPO, HostProcess, copy_app
from test_samples import parse_demo

from durableagent.testing import FakeOpenAIServer

README = REPO / "README.md"
SAMPLES = REPO / "samples"
DOCS = [README, *sorted(SAMPLES.glob("*/README.md"))]
DEMO_ORIGIN = "localhost:7071"
# Commands a shell block may hold without being an HTTP snippet (set-up, start, deploy).
SHELL_COMMANDS = {"./dev", ".venv/bin/durableagent", "durableagent", "python", "pip", "cp", "cd", "func", "az", "azd"}
# States the samples report while work is still going on: a GET answering one of them is asked again.
BUSY_STATES = {"pending", "running", "drafting", "revising", "asking", "summarizing"}
PATIENCE = 60.0
# Settings a sample's README tells its reader to set to see it work right away.
SAMPLE_SETTINGS = {"04_scheduled_agent": {"DIGEST_SCHEDULE": "*/10 * * * * *"}}


# Reading the Markdown -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snippet:
    """One fenced block: where it is, its language, its code (dedented) and its ``<!-- snippet: -->`` mark."""

    doc: Path
    line: int
    lang: str
    code: str
    mark: str = ""

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"

    @property
    def kind(self) -> str:
        """``app``, ``module``, ``excerpt``, ``covered``, ``script``, ``http``, ``response``, ``shell``,
        ``text`` (a shape or a layout: nothing to run) or ``unknown``."""
        if self.mark.startswith("excerpt of "):
            return "excerpt"
        if self.mark.startswith("covered by "):
            return "covered"
        if self.mark.startswith("script in the app folder"):
            return "script"
        if self.mark == "response":
            return "response"
        if self.mark:
            return "unknown"
        if self.lang == "python":
            return (
                "app"
                if re.search(r"^app = [\w.]*(AgentFunctionApp|FunctionApp|DFApp)\(", self.code, re.M)
                else "module"
            )
        if self.lang == "http":
            return "http"
        if self.lang == "bash":
            if "curl " in self.code:
                return "http"
            commands = [line.split()[0] for line in _commands(self.code)]
            return "shell" if all(c in SHELL_COMMANDS for c in commands) else "unknown"
        if self.lang in ("", "json"):
            return "text"
        return "unknown"


_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>\w*)\s*$")
_MARK = re.compile(r"^\s*<!--\s*snippet:\s*(?P<mark>.*?)\s*-->\s*$")


def read_snippets(doc: Path) -> list[Snippet]:
    """The fenced blocks of one Markdown file, in order."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    found: list[Snippet] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        indent = len(fence["indent"])
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        code = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        mark = _MARK.match(lines[i - 1]) if i else None
        found.append(Snippet(doc, i + 1, fence["lang"], code, mark["mark"] if mark else ""))
        i = end + 1
    return found


def _commands(code: str) -> list[str]:
    """A shell block's commands: continuation lines joined, comments and blank lines left out."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def all_snippets() -> list[Snippet]:
    return [snippet for doc in DOCS for snippet in read_snippets(doc)]


# Static: every snippet has a way to run ------------------------------------------------------------------


def test_every_snippet_is_run_or_covered() -> None:
    snippets = all_snippets()
    unknown = [f"{s.where} ({s.lang or 'no language'}, mark {s.mark!r})" for s in snippets if s.kind == "unknown"]
    assert not unknown, "snippets the runner cannot run; make them runnable or mark them:\n" + "\n".join(unknown)
    for snippet in snippets:
        if snippet.kind == "covered":
            path, _, test = snippet.mark.removeprefix("covered by ").partition("::")
            source = (REPO / path).read_text(encoding="utf-8")
            assert all(f"def {n}" in source or f"class {n}" in source for n in test.split("::")), snippet.where
        if snippet.kind == "excerpt":
            check_excerpt(snippet, REPO / snippet.mark.removeprefix("excerpt of "))
        if snippet.kind == "response":
            json.loads(snippet.code)
    # Each sample's README sends its reader to demo.http, which therefore runs too (test_samples_run).
    for doc in DOCS[1:]:
        assert "demo.http" in doc.read_text(encoding="utf-8") and (doc.parent / "demo.http").is_file()
    kinds = {s.kind for s in snippets}
    assert {"app", "module", "excerpt", "http", "response", "script", "covered"} <= kinds, kinds


def _imports(tree: ast.Module) -> set[tuple[str, str]]:
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            found |= {(node.module or "", alias.asname or alias.name) for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {("", alias.asname or alias.name) for alias in node.names}
    return found


def check_excerpt(snippet: Snippet, path: Path) -> None:
    """An excerpt's imports are the file's (however the file groups them); every other line is in the file
    as it is, in the same order."""
    source = path.read_text(encoding="utf-8")
    excerpt = ast.parse(snippet.code)
    missing = _imports(excerpt) - _imports(ast.parse(source))
    assert not missing, f"{snippet.where}: {path.name} does not import {missing}"
    target = source.splitlines()
    position = 0
    for node in excerpt.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        segment = snippet.code.splitlines()[
            node.lineno - 1 - len(getattr(node, "decorator_list", [])) : node.end_lineno
        ]
        for line in segment:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            assert line in target[position:], f"{snippet.where}: {line!r} is not in {path.name} (in this order)"
            position = target.index(line, position) + 1


def test_reader_sees_marks_indented_blocks_and_kinds(tmp_path: Path) -> None:
    doc = tmp_path / "README.md"
    doc.write_text(
        "# T\n\n```python\nimport json\n```\n\n- item:\n\n  ```python\n  app = AgentFunctionApp()\n  ```\n\n"
        "<!-- snippet: response -->\n```json\n{}\n```\n\n```bash\ncurl -s localhost:7071/api/health\n```\n\n"
        "```bash\n./dev start\n```\n\n```bash\nrm -rf /\n```\n\n```toml\nx = 1\n```\n",
        encoding="utf-8",
    )
    snippets = read_snippets(doc)
    assert [s.kind for s in snippets] == ["module", "app", "response", "http", "shell", "unknown", "unknown"]
    assert snippets[1].code == "app = AgentFunctionApp()\n" and snippets[1].line == 9


# Running HTTP snippets -------------------------------------------------------------------------------------


@dataclass
class Session:
    """One README's HTTP snippets against one running host: the answers so far, by order and by name."""

    host: HostProcess
    answers: list[Any] = field(default_factory=list)
    named: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)

    def url(self, url: str) -> str:
        url = url.replace(f"http://{DEMO_ORIGIN}", self.host.base_url).replace(DEMO_ORIGIN, self.host.base_url)
        assert url.startswith(self.host.base_url + "/"), f"not a URL of the app: {url}"
        return url[len(self.host.base_url) :]

    def send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], accept: Any, where: str
    ) -> tuple[int, Any]:
        """Send until ``accept(status, body)`` holds, repeating while the answer only says "not yet"."""
        path = self.url(url)
        deadline = time.monotonic() + PATIENCE
        while True:
            code, _, raw = self.host.request(method, path, body, headers, timeout=PATIENCE)
            try:
                answer: Any = json.loads(raw) if raw else None
            except ValueError:
                answer = raw.decode(errors="replace")
            # A GET that reports work still going on is asked again, as the READMEs tell their readers.
            if accept(code, answer) and not (method == "GET" and _busy(code, answer)):
                self.answers.append(answer)
                return code, answer
            not_yet = (method == "GET" and code == 202) or _busy(code, answer) or code in (404, 409)
            if not not_yet or time.monotonic() > deadline:
                raise AssertionError(f"{where}: {method} {path} answered {code} {answer!r}\n{self.host.log()[-3000:]}")
            time.sleep(0.2)

    def find(self, name: str) -> Any:
        """The latest answer's value of a field ``name`` (anywhere in it, first match depth-first)."""
        for answer in reversed(self.answers):
            found = _find(answer, name)
            if found is not None:
                return found
        raise AssertionError(f"no answer so far has a field {name!r}")


class Accept:
    """Which answers a request documents: 2xx, plus the codes its title names (or exactly one code+error)."""

    def __init__(self, title: str = "") -> None:
        strict = re.search(r"\b([1-5]\d\d) ([a-z]+(?:_[a-z]+)+)\b", title)
        self.status = int(strict[1]) if strict else None
        self.error = strict[2] if strict else None
        self.codes = {int(c) for c in re.findall(r"\b([1-5]\d\d)\b", title)}

    def __call__(self, code: int, body: Any) -> bool:
        if self.status is not None:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            return code == self.status and error.get("code") == self.error
        # A 409 a title mentions ("sending it again now gets 409") is what a late repeat gets: not this one.
        return 200 <= code < 300 or (code in self.codes and code != 409)


def _busy(code: int, body: Any) -> bool:
    if code == 202 and isinstance(body, dict) and "runtimeStatus" in body:
        return True
    if not isinstance(body, dict):
        return False
    states = [
        body.get("state"),
        (body.get("customStatus") or {}).get("state") if isinstance(body.get("customStatus"), dict) else None,
    ]
    return any(isinstance(s, str) and s in BUSY_STATES for s in states)


def _find(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        # A URL template ("…/requests/{requestId}") is not what a reader pastes for a placeholder.
        if name in value and not re.search(r"\{\w+\}", str(value[name])):
            return value[name]
        values: list[Any] = list(value.values())
    elif isinstance(value, list):
        values = value
    else:
        return None
    for item in values:
        found = _find(item, name)
        if found is not None:
            return found
    return None


def _json_path(value: Any, path: str) -> Any:
    """REST Client's ``$.a.b[0].c``."""
    for part in re.findall(r"\.(\w+)|\[(\d+)\]", path.removeprefix("$")):
        value = value[part[0]] if part[0] else value[int(part[1])]
    return value


def run_curl_block(session: Session, snippet: Snippet) -> None:
    """Run a ``bash`` block's ``curl`` commands (and ``VAR=$(curl ...)``) in order."""
    shell_vars: dict[str, str] = {}
    lines = _logical_lines(snippet.code)
    for index, line in enumerate(lines):
        text = line.strip()
        follow = re.match(r"#\s*then GET the (\w+) from the answer", text)
        if follow:
            session.send("GET", str(session.find(follow[1])), None, {}, Accept(), snippet.where)
            continue
        if not text or text.startswith("#"):
            continue
        text = re.sub(r"<(\w+)>", lambda m: str(session.find(m[1])), text)
        assigned = re.fullmatch(r"(\w+)=\$\((curl .*)\)", text)
        # A variable expands inside the word it is in, quotes in its value and all (as bash does in "...").
        argv = shlex.split(re.sub(r"\$(\w+)", r"@@\1@@", assigned[2] if assigned else text), comments=True)
        argv = [re.sub(r"@@(\w+)@@", lambda m: shell_vars[m[1]], arg) for arg in argv]
        _, answer = run_curl(session, argv, snippet.where)
        if assigned:
            shell_vars[assigned[1]] = json.dumps(answer) if not isinstance(answer, str) else answer
        # A "# {...}" comment right after the command shows the answer's fields.
        documented = []
        for following in lines[index + 1 :]:
            if not following.strip().startswith("# {") and not following.strip().startswith("#  "):
                break
            documented += re.findall(r'"(\w+)":', following)
        missing = [name for name in documented if not isinstance(answer, dict) or name not in answer]
        assert not missing, f"{snippet.where}: the answer lacks {missing}: {answer}"


def _logical_lines(code: str) -> list[str]:
    """A shell block's lines with continuations (a trailing backslash, or a quote still open) joined."""
    logical: list[str] = []
    pending = ""
    for line in re.sub(r"\\\n\s*", " ", code).splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if not pending.lstrip().startswith("#"):
            try:
                shlex.split(pending, comments=True)
            except ValueError:  # "No closing quotation": the command goes on
                continue
        logical.append(pending)
        pending = ""
    assert not pending, f"unterminated command: {pending!r}"
    return logical


def run_curl(session: Session, argv: list[str], where: str) -> tuple[int, Any]:
    assert argv[0] == "curl", f"{where}: not a curl command: {argv}"
    method: str | None = None
    headers: dict[str, str] = {}
    data: str | None = None
    url: str | None = None
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-s", "-S", "-sS", "--silent"):
            continue
        if arg in ("-X", "--request"):
            method = next(args)
        elif arg in ("-H", "--header"):
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg in ("-d", "--data", "--data-raw"):
            data = next(args)
        elif arg.startswith("-"):
            raise AssertionError(f"{where}: the runner does not know curl's {arg}")
        else:
            url = arg if "://" in arg else f"http://{arg}"
    assert url is not None, f"{where}: no URL in {argv}"
    method = method or ("POST" if data is not None else "GET")
    if data is not None and not any(name.lower() == "content-type" for name in headers):
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")  # curl's default for -d
    return session.send(method, url, data.encode() if data is not None else None, headers, Accept(), where)


def run_demo(session: Session, path: Path) -> None:
    """Send every request of a REST Client file in order, as "Send Request" on each block would."""
    variables, _, requests = parse_demo(path)
    name_of = _request_names(path)
    for index, request in enumerate(requests):
        where = f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path.name} '{request.title}'"

        def fill(text: str) -> str:
            text = re.sub(r"\{\{(\w+)\}\}", lambda m: variables[m[1]], text)
            return re.sub(
                r"\{\{(\w+)\.response\.body\.(\$[^}]*)\}\}",
                lambda m: str(_json_path(session.named[m[1]], m[2])),
                text,
            )

        headers = {"Content-Type": request.content_type} if request.content_type else {}
        body = fill(request.body).encode() if request.body else None
        _, answer = session.send(request.method, fill(request.url), body, headers, Accept(request.title), where)
        if name_of.get(index):
            session.named[name_of[index]] = answer


def _request_names(path: Path) -> dict[int, str]:
    """Request index -> its ``# @name`` (parse_demo lists the names, not which request has them)."""
    names: dict[int, str] = {}
    blocks = re.split(r"^###[^\n]*$", path.read_text(encoding="utf-8"), flags=re.M)
    index = -1
    for block in blocks:
        has_request = re.search(r"^(GET|POST|PUT|PATCH|DELETE)\s", block, re.M)
        if has_request:
            index += 1
            named = re.search(r"^#\s*@name\s+(\w+)", block, re.M)
            if named:
                names[index] = named[1]
    return names


def check_response_block(session: Session, snippet: Snippet) -> None:
    """A ``<!-- snippet: response -->`` JSON block: its fields came back, with its values where they are not
    placeholders (``...``)."""
    documented = json.loads(snippet.code)
    actual = session.answers[-1]
    for name, value in documented.items():
        assert name in actual, f"{snippet.where}: the answer lacks {name!r}: {actual}"
        if not (isinstance(value, str) and "..." in value) and not isinstance(value, dict | list):
            assert actual[name] == value, f"{snippet.where}: {name} is {actual[name]!r}, the README says {value!r}"


# The stack -----------------------------------------------------------------------------------------------


def _env(azurite: AzuriteInstance, model: FakeOpenAIServer | None) -> dict[str, str]:
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "TASKHUB_NAME": f"Snippets{uuid.uuid4().hex[:12]}",
        "AZURE_OPENAI_ENDPOINT": "",
        "OPENAI_API_KEY": "",
        "NO_PROXY": "127.0.0.1,localhost",
        # As the samples' READMEs say: the app imports durableagent from the repository.
        "PYTHONPATH": str(REPO),
    }
    if model is not None:
        env.update(model.env())
    return env


def _app_folder(tmp: Path, code: str) -> Path:
    folder = tmp / "app"
    folder.mkdir(parents=True)
    (folder / "function_app.py").write_text(code, encoding="utf-8")
    shutil.copy(REPO / "host.json", folder / "host.json")
    return folder


# README.md -----------------------------------------------------------------------------------------------


def _readme_groups() -> list[tuple[Snippet | None, list[Snippet]]]:
    """README.md's runnable snippets grouped by the app they run against (an app, or the root app for an
    excerpt of function_app.py), in order; module snippets stand alone."""
    groups: list[tuple[Snippet | None, list[Snippet]]] = []
    for snippet in read_snippets(README):
        if snippet.kind in ("app", "excerpt"):
            groups.append((snippet, []))
        elif snippet.kind in ("http", "response"):
            assert groups, f"{snippet.where}: an HTTP snippet before any app"
            groups[-1][1].append(snippet)
    return groups


@pytest.mark.parametrize("snippet", [s for s in read_snippets(README) if s.kind == "module"], ids=lambda s: s.where)
def test_readme_module_snippets_run(snippet: Snippet, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(snippet.code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "AZURE_OPENAI_ENDPOINT": "", "OPENAI_API_KEY": ""}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{snippet.where}:\n{done.stderr}"


@pytest.mark.e2e
@pytest.mark.parametrize("group", _readme_groups(), ids=lambda g: g[0].where if g[0] else "?")
def test_readme_apps_serve_their_http_snippets(
    group: tuple[Snippet, list[Snippet]],
    azurite: AzuriteInstance,
    model: FakeOpenAIServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    app, followers = group
    if "blob_trigger" in app.code:
        # A blob trigger fires on every blob its path matches, those other tests left in the session's
        # Azurite too (the product description's app writes uploads/*.txt): this app gets its own.
        azurite = request.getfixturevalue("own_azurite")
    if app.kind == "excerpt":
        # What `./dev start` serves: the root app, on the offline model of a fresh machine.
        folder = _root_copy(tmp_path)
        env = _env(azurite, None)
    else:
        folder = _app_folder(tmp_path, app.code)
        env = _env(azurite, model)
    with HostProcess(folder, env=env) as host:
        session = Session(host)
        code, health = host.request("GET", "/api/health")[:2]
        if code != 404:  # an app without agents or workflows has no health route
            assert code == 200, health
        for snippet in followers:
            if snippet.kind == "response":
                check_response_block(session, snippet)
            elif snippet.lang == "http":
                run_demo(session, _write(tmp_path / "snippet.http", snippet.code))
            else:
                run_curl_block(session, snippet)
        log = host.log()
    assert "Traceback" not in log, log[-3000:]


def _root_copy(tmp: Path) -> Path:
    folder = tmp / "root"
    folder.mkdir()
    for name in ("function_app.py", "host.json"):
        shutil.copy(REPO / name, folder / name)
    return folder


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# samples/*/README.md and demo.http ---------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(d.parent.name for d in DOCS[1:]))
def test_samples_run_their_readme_snippets_and_demo_http(name: str, azurite: AzuriteInstance, tmp_path: Path) -> None:
    folder = copy_app(SAMPLES / name, tmp_path / "app")
    snippets = read_snippets(SAMPLES / name / "README.md")
    env = {**_env(azurite, None), **SAMPLE_SETTINGS.get(name, {})}
    with HostProcess(folder, env=env) as host:
        session = Session(host)
        for snippet in snippets:
            if snippet.kind == "http" and snippet.lang == "bash":
                run_curl_block(session, snippet)
            elif snippet.kind == "http":
                run_demo(session, _write(tmp_path / "snippet.http", snippet.code))
        run_demo(session, SAMPLES / name / "demo.http")
        for snippet in snippets:
            if snippet.kind == "script":
                run_script(session, snippet, folder, {**os.environ, **env})
            elif snippet.kind == "module":
                script = _write(folder / "readme_snippet.py", snippet.code)
                done = subprocess.run(
                    [sys.executable, str(script)], cwd=folder, env={**os.environ, **env}, capture_output=True, text=True
                )
                assert done.returncode == 0, f"{snippet.where}:\n{done.stderr}"


def run_script(session: Session, snippet: Snippet, folder: Path, env: dict[str, str]) -> None:
    """A script beside the app's function_app.py, its example literal replaced by a real value."""
    code = snippet.code
    placeholder = re.search(r";\s*(\S+) is an? (\w+)", snippet.mark)
    if placeholder:
        assert placeholder[1] in code, f"{snippet.where}: {placeholder[1]} is not in the snippet"
        code = code.replace(placeholder[1], str(session.find(placeholder[2])))
    script = _write(folder / "readme_snippet.py", code)
    done = subprocess.run([sys.executable, str(script)], cwd=folder, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{snippet.where}:\n{done.stderr}"
    printed = done.stdout.strip()
    assert printed not in ("", "[]", "None"), f"{snippet.where}: printed {printed!r}"
