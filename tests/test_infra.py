"""Offline gate for the deploy-to-Azure assets: azure.yaml, infra/ (Bicep for azd), host.json and friends.

The real Bicep compiler cannot be installed offline, so the Bicep files are checked with what checkov
3.3.30 bundles: the pycep parser (the one checkov's Bicep runner uses) and checkov's own rules.

checkov is not in the ``dev`` extra: its pins conflict with ours (it needs ``packaging<24``, pytest 9.2.0
needs ``packaging>=24``). These tests install nothing. They use the checkov at ``$DURABLEAGENT_CHECKOV``
(path to the ``checkov`` executable), else next to this interpreter, else on ``PATH``; pycep is imported
by this interpreter if it has it, else by the one that runs that checkov (read from its ``#!`` line).
Without a checkov the Bicep tests fail and say how to get one (``requirements-infra.txt``); the JSON and
YAML tests always run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# checkov rules this template does not meet on purpose. Every id needs a reason in infra/README.md.
CHECKOV_SKIPS = (
    "CKV_AZURE_17",  # client certificates: callers authenticate with function keys / Entra ID
    "CKV_AZURE_35",  # storage default-deny network rule: needs a VNet + private endpoints
    "CKV_AZURE_59",  # storage public network access: same
    "CKV_AZURE_134",  # OpenAI public network access: same
    "CKV_AZURE_206",  # storage geo-replication: LRS is enough for a task hub + deployment packages
    "CKV_AZURE_212",  # minimum worker count: Flex Consumption scales instances itself
    "CKV_AZURE_213",  # App Service health check path: not a Flex Consumption feature
    "CKV_AZURE_222",  # function app public network access: it is a public HTTP API
    "CKV_AZURE_225",  # zone-redundant plan: only in some Flex regions; opt in per deployment
)

ROLE_IDS = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Cognitive Services OpenAI User": "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd",
    "Durable Task Data Contributor": "0ad04412-c4d5-4796-b79c-f76d14c8d402",
}
# role -> the resource type its assignment must be scoped to
ROLE_SCOPES = {
    ROLE_IDS["Storage Blob Data Owner"]: "Microsoft.Storage/storageAccounts",
    ROLE_IDS["Storage Queue Data Contributor"]: "Microsoft.Storage/storageAccounts",
    ROLE_IDS["Storage Table Data Contributor"]: "Microsoft.Storage/storageAccounts",
    ROLE_IDS["Monitoring Metrics Publisher"]: "Microsoft.Insights/components",
    ROLE_IDS["Cognitive Services OpenAI User"]: "Microsoft.CognitiveServices/accounts",
    ROLE_IDS["Durable Task Data Contributor"]: "Microsoft.DurableTask/schedulers",
}

REQUIRED_APP_SETTINGS = {
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_CHAT_DEPLOYMENT_NAME",
    "AZURE_CLIENT_ID",
    "TASKHUB_NAME",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
# Flex Consumption rejects these as app settings (the runtime lives in functionAppConfig).
FORBIDDEN_APP_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "AzureWebJobsStorage",
}

REQUIRED_OUTPUTS = {
    "AZURE_LOCATION",
    "AZURE_TENANT_ID",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_CHAT_DEPLOYMENT_NAME",
    "AZURE_FUNCTION_APP_NAME",
    "AZURE_FUNCTION_URL",
    "SERVICE_API_URI",
    "RESOURCE_GROUP",
}

API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# "<type>@<version>" pairs allowed to use a -preview API version (none needed today).
PREVIEW_API_ALLOWED: set[str] = set()

_PARSE_SCRIPT = r"""
import json, sys
from pycep import BicepParser
parser = BicepParser()
out = {}
for path in sys.argv[1:]:
    try:
        with open(path, encoding="utf-8") as fh:
            out[path] = {"tree": parser.parse(text=fh.read()), "error": None}
    except Exception as exc:  # report, don't stop: the test lists every file that fails
        out[path] = {"tree": None, "error": f"{type(exc).__name__}: {exc}"}
json.dump(out, sys.stdout, default=str)
"""


# --------------------------------------------------------------------------------------------- tooling


def _checkov_executable() -> Path | None:
    configured = os.environ.get("DURABLEAGENT_CHECKOV")
    if configured:
        return Path(configured)
    beside = Path(sys.executable).parent / "checkov"
    if beside.exists():
        return beside
    # Where ./dev setup installs it (a venv of its own, because of the pin conflict above).
    project_venv = ROOT / ".venv-infra" / "bin" / "checkov"
    if project_venv.exists():
        return project_venv
    found = shutil.which("checkov")
    return Path(found) if found else None


def _pycep_python() -> str | None:
    if importlib.util.find_spec("pycep") is not None:
        return sys.executable
    checkov = _checkov_executable()
    if checkov is None or not checkov.is_file():
        return None
    first = checkov.read_bytes().split(b"\n", 1)[0].decode(errors="replace")
    if not first.startswith("#!"):
        return None
    interpreter = first[2:].strip().split()[0]
    return interpreter if Path(interpreter).exists() else None


_NO_TOOL = (
    "checkov==3.3.30 (with pycep) not found: it conflicts with the dev pins, so install "
    "requirements-infra.txt into a separate venv and set DURABLEAGENT_CHECKOV=<venv>/bin/checkov"
)


@pytest.fixture(scope="module")
def parsed() -> dict[str, dict[str, Any]]:
    """Every infra/**/*.bicep parsed by pycep: {relative path: {"tree": ..., "error": ...}}."""
    python = _pycep_python()
    if python is None:
        pytest.fail(_NO_TOOL)
    proc = subprocess.run(
        [python, "-c", _PARSE_SCRIPT, *map(str, BICEP_FILES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    raw = json.loads(proc.stdout)
    return {Path(path).relative_to(INFRA).as_posix(): result for path, result in raw.items()}


@pytest.fixture(scope="module")
def trees(parsed: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    bad = {path: result["error"] for path, result in parsed.items() if result["error"]}
    assert not bad, f"pycep could not parse: {bad}"
    return {path: result["tree"] for path, result in parsed.items()}


# ----------------------------------------------------------------------------------- AST helpers


def _body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's or module's body; conditional ones (`= if (...) {...}`) wrap it once more."""
    config: dict[str, Any] = resource["config"]
    if "condition" in config and "config" in config:
        inner: dict[str, Any] = config["config"]
        return inner
    return config


def _condition(resource: dict[str, Any]) -> Any:
    return resource["config"].get("condition")


def _resources(tree: dict[str, Any], type_: str, *, existing: bool = False) -> dict[str, dict[str, Any]]:
    return {
        name: res
        for name, res in tree.get("resources", {}).items()
        if res["type"] == type_ and res["existing"] == existing
    }


def _only(tree: dict[str, Any], type_: str) -> dict[str, Any]:
    found = _resources(tree, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return _body(next(iter(found.values())))


def _variable(tree: dict[str, Any], name: str) -> Any:
    return tree.get("variables", {})[name]["value"]


def _param_default(tree: dict[str, Any], name: str) -> Any:
    return tree["parameters"][name]["default"]


def _app_settings(tree: dict[str, Any], expr: Any) -> dict[str, Any]:
    """Collect {name: value} from an appSettings expression: literal arrays, variables, concat/union, ?:."""
    settings: dict[str, Any] = {}
    variables = tree.get("variables", {})
    if isinstance(expr, list):
        for item in expr:
            if isinstance(item, dict) and "name" in item and "value" in item:
                settings[item["name"]] = item["value"]
    elif isinstance(expr, str) and expr in variables:
        settings.update(_app_settings(tree, variables[expr]["value"]))
    elif isinstance(expr, dict) and "function" in expr:
        for arg in expr["function"]["parameters"].values():
            settings.update(_app_settings(tree, arg))
    elif isinstance(expr, dict) and "operator" in expr:
        for operand in expr["operator"]["operands"].values():
            settings.update(_app_settings(tree, operand))
    return settings


def _function_app(trees: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    sites = [(t, _body(r)) for t in trees.values() for r in _resources(t, "Microsoft.Web/sites").values()]
    assert len(sites) == 1, "expected exactly one Microsoft.Web/sites"
    return sites[0]


# ----------------------------------------------------------------------------------------- parsing


def test_bicep_files_exist() -> None:
    names = {p.relative_to(INFRA).as_posix() for p in BICEP_FILES}
    assert "main.bicep" in names
    assert len(names) > 1, "main.bicep should delegate resource-group resources to modules"
    assert not list(INFRA.rglob("*.bicepparam")), ".bicepparam files are not parseable offline"


def test_every_bicep_file_parses(parsed: dict[str, dict[str, Any]]) -> None:
    assert sorted(parsed) == sorted(p.relative_to(INFRA).as_posix() for p in BICEP_FILES)
    errors = {path: result["error"] for path, result in parsed.items() if result["error"] or not result["tree"]}
    assert errors == {}


def test_only_native_resources_and_parseable_features() -> None:
    for path in BICEP_FILES:
        text = path.read_text(encoding="utf-8")
        code = "\n".join(line.split("//", 1)[0] for line in text.splitlines())
        assert "br/public:" not in code and "br:" not in code, f"{path}: registry modules cannot be scanned"
        assert "deployer()" not in code, f"{path}: deployer() breaks pycep"
        assert not re.search(r"^\s*(import|func|type)\s", code, re.M), f"{path}: import/func/type break pycep"
        assert "listKeys(" not in code, f"{path}: no keys: everything is identity-based"


def test_modules_are_local_files(trees: dict[str, dict[str, Any]]) -> None:
    modules = trees["main.bicep"].get("modules", {})
    assert modules
    for name, module in modules.items():
        assert module["type"] == "local", name
        target = INFRA / module["detail"]["path"]
        assert target.is_file(), f"module {name}: {target} missing"


def test_main_targets_subscription_and_creates_resource_group(trees: dict[str, dict[str, Any]]) -> None:
    main = trees["main.bicep"]
    assert main["globals"]["scope"]["value"] == "subscription"
    assert _resources(main, "Microsoft.Resources/resourceGroups")
    for name, module in main["modules"].items():
        assert _body(module)["scope"] == "rg", f"module {name} should deploy into the resource group"


def test_every_api_version_is_pinned(trees: dict[str, dict[str, Any]]) -> None:
    for path, tree in trees.items():
        for name, res in tree.get("resources", {}).items():
            version = str(res.get("api_version") or "")
            where = f"{path}:{name} {res['type']}@{version}"
            assert version and "latest" not in version.lower(), where
            if f"{res['type']}@{version}" in PREVIEW_API_ALLOWED:
                continue
            assert API_VERSION.match(version), f"{where}: pin a GA date version"


# ---------------------------------------------------------------------------------------- invariants


def test_storage_account_is_identity_only(trees: dict[str, dict[str, Any]]) -> None:
    accounts = [
        _body(res) for tree in trees.values() for res in _resources(tree, "Microsoft.Storage/storageAccounts").values()
    ]
    assert len(accounts) == 1
    props = accounts[0]["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["allowBlobPublicAccess"] is False
    assert props["supportsHttpsTrafficOnly"] is True
    containers = [
        _body(res)
        for tree in trees.values()
        for res in _resources(tree, "Microsoft.Storage/storageAccounts/blobServices/containers").values()
    ]
    assert containers, "a blob container for deployment packages"
    assert all(c.get("properties", {}).get("publicAccess", "None") == "None" for c in containers)


def test_app_insights_and_openai_have_local_auth_off(trees: dict[str, dict[str, Any]]) -> None:
    monitoring = trees["app/monitoring.bicep"]
    insights = _only(monitoring, "Microsoft.Insights/components")
    assert insights["properties"]["DisableLocalAuth"] is True
    assert insights["properties"]["WorkspaceResourceId"], "workspace-based App Insights"
    assert _only(monitoring, "Microsoft.OperationalInsights/workspaces")

    openai = trees["app/openai.bicep"]
    account = _only(openai, "Microsoft.CognitiveServices/accounts")
    assert account["kind"] == "OpenAI"
    assert account["properties"]["disableLocalAuth"] is True
    assert account["properties"]["customSubDomainName"], "Entra ID auth needs a custom subdomain"


def test_chat_model_deployment_is_parameterised(trees: dict[str, dict[str, Any]]) -> None:
    openai = trees["app/openai.bicep"]
    deployment = _only(openai, "Microsoft.CognitiveServices/accounts/deployments")
    model = deployment["properties"]["model"]
    assert model == {"format": "OpenAI", "name": "chatModelName", "version": "chatModelVersion"}
    assert deployment["sku"] == {"name": "chatDeploymentSkuName", "capacity": "chatDeploymentCapacity"}
    main = trees["main.bicep"]
    assert _param_default(main, "chatModelName") == "gpt-4o-mini"
    assert _param_default(main, "chatModelVersion") == "2024-07-18"
    assert _param_default(main, "chatDeploymentCapacity") == 30
    assert _param_default(main, "chatDeploymentSkuName") == "GlobalStandard"
    params = _body(main["modules"]["openai"])["params"]
    for name in ("chatModelName", "chatModelVersion", "chatDeploymentCapacity", "chatDeploymentSkuName"):
        assert params[name] == name, f"main.bicep should pass {name} through to the OpenAI module"


def _role_assignments(trees: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for path, tree in trees.items():
        for name, res in _resources(tree, "Microsoft.Authorization/roleAssignments").items():
            body = _body(res)
            props = body["properties"]
            role_ref = props["roleDefinitionId"]["function"]
            assert role_ref["type"] == "subscription_resource_id", f"{path}:{name}"
            assert role_ref["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
            role_var = role_ref["parameters"]["resource_name_1"]
            role_id = _variable(tree, role_var)
            scope = body["scope"]
            scope_res = tree["resources"][scope]
            principal_type = props["principalType"]
            if principal_type in tree.get("parameters", {}):
                principal_type = _param_default(tree, principal_type)
            guid_args = body["name"]["function"]
            assert guid_args["type"] == "guid", f"{path}:{name} needs a deterministic guid() name"
            args = list(guid_args["parameters"].values())
            assert props["principalId"] in args and role_var in args, f"{path}:{name} guid() inputs"
            scope_id = {"operator": {"type": "property_accessor", "operands": {"operand_1": scope, "operand_2": "id"}}}
            assert scope_id in args, f"{path}:{name} guid() should include the scope id"
            found.append(
                {
                    "where": f"{path}:{name}",
                    "role": role_id,
                    "scope_type": scope_res["type"],
                    "principal": props["principalId"],
                    "principal_type": principal_type,
                    "condition": _condition(res),
                }
            )
    return found


def test_role_assignments(trees: dict[str, dict[str, Any]]) -> None:
    assignments = _role_assignments(trees)
    for a in assignments:
        assert a["role"] in ROLE_SCOPES, f"{a['where']}: unexpected role {a['role']}"
        assert a["scope_type"] == ROLE_SCOPES[a["role"]], f"{a['where']}: wrong scope {a['scope_type']}"
        if a["principal"] == "identityPrincipalId":
            assert a["principal_type"] == "ServicePrincipal", a["where"]
            assert a["condition"] is None, f"{a['where']}: the app identity always gets its roles"
        else:
            assert a["principal"] == "userPrincipalId", a["where"]
            assert a["principal_type"] == "User", a["where"]
            assert a["condition"] is not None, f"{a['where']}: only when a user principal id is given"
    app_roles = {a["role"] for a in assignments if a["principal"] == "identityPrincipalId"}
    user_roles = {a["role"] for a in assignments if a["principal"] == "userPrincipalId"}
    assert app_roles == set(ROLE_IDS.values())
    assert user_roles == set(ROLE_IDS.values())
    assert len(assignments) == len({(a["role"], a["principal"]) for a in assignments}), "duplicate assignment"


def test_role_modules_get_the_right_principals(trees: dict[str, dict[str, Any]]) -> None:
    main = trees["main.bicep"]
    principal_id = {
        "operator": {
            "type": "property_accessor",
            "operands": {
                "operand_1": "identity",
                "operand_2": {
                    "operator": {
                        "type": "property_accessor",
                        "operands": {"operand_1": "outputs", "operand_2": "principalId"},
                    }
                },
            },
        }
    }
    for module in ("rbac", "dts"):
        params = _body(main["modules"][module])["params"]
        assert params["identityPrincipalId"] == principal_id, module
        assert params["userPrincipalId"] == "principalId", module
        assert params["userPrincipalType"] == "principalType", module
    assert _param_default(main, "principalId") == ""
    assert _param_default(main, "principalType") == "User"


def test_flex_consumption_plan_and_function_app(trees: dict[str, dict[str, Any]]) -> None:
    api = trees["app/api.bicep"]
    plan = _only(api, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True, "Linux"

    _, site = _function_app(trees)
    assert site["kind"] == "functionapp,linux"
    tags = site["tags"]
    tag_objects = [tags, *tags.get("function", {}).get("parameters", {}).values()]
    assert any(isinstance(t, dict) and t.get("'azd-service-name'") == "api" for t in tag_objects)
    assert site["identity"]["type"] == "UserAssigned"
    props = site["properties"]
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    config = props["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"
    assert storage["authentication"]["userAssignedIdentityResourceId"]
    scale = config["scaleAndConcurrency"]
    assert {"instanceMemoryMB", "maximumInstanceCount"} <= set(scale)
    assert _param_default(api, "instanceMemoryMB") in (512, 2048, 4096)


def test_app_settings(trees: dict[str, dict[str, Any]]) -> None:
    tree, site = _function_app(trees)
    settings = _app_settings(tree, site["properties"]["siteConfig"]["appSettings"])
    missing = REQUIRED_APP_SETTINGS - set(settings)
    assert not missing, f"missing app settings: {sorted(missing)}"
    assert not FORBIDDEN_APP_SETTINGS & set(settings)
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    client_id = "${identity.properties.clientId}"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == f"ClientId={client_id};Authorization=AAD"
    dts = settings["DURABLE_TASK_SCHEDULER_CONNECTION_STRING"]
    assert dts == f"Endpoint=${{durableTaskSchedulerEndpoint}};Authentication=ManagedIdentity;ClientID={client_id}"


def test_durable_task_scheduler_is_opt_in(trees: dict[str, dict[str, Any]]) -> None:
    main = trees["main.bicep"]
    assert main["parameters"]["useDurableTaskScheduler"]["type"] == "bool"
    assert _param_default(main, "useDurableTaskScheduler") is False
    module = main["modules"]["dts"]
    assert _condition(module) == "useDurableTaskScheduler"
    assert module["detail"]["path"] == "app/dts.bicep"
    dts = trees["app/dts.bicep"]
    assert _only(dts, "Microsoft.DurableTask/schedulers")["properties"]["ipAllowlist"]
    assert _only(dts, "Microsoft.DurableTask/schedulers/taskHubs")["name"] == "taskHubName"
    api_params = _body(main["modules"]["api"])["params"]
    endpoint = api_params["durableTaskSchedulerEndpoint"]["operator"]
    assert endpoint["type"] == "conditional"
    assert endpoint["operands"]["condition"] == "useDurableTaskScheduler"
    assert endpoint["operands"]["false_value"] == ""


def test_outputs_for_azd(trees: dict[str, dict[str, Any]]) -> None:
    outputs = set(trees["main.bicep"]["outputs"])
    missing = REQUIRED_OUTPUTS - outputs
    assert not missing, sorted(missing)


# ------------------------------------------------------------------------------------------ checkov


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    checkov = _checkov_executable()
    if checkov is None or not checkov.exists():
        pytest.fail(_NO_TOOL)
    cmd = [
        str(checkov),
        "-d",
        str(INFRA),
        "--framework",
        "bicep",
        "--skip-download",
        "--quiet",
        "--compact",
        "-o",
        "json",
        "--skip-check",
        ",".join(CHECKOV_SKIPS),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False, cwd=ROOT)
    assert proc.returncode in (0, 1), proc.stderr
    report: dict[str, Any] | list[dict[str, Any]] = json.loads(proc.stdout)
    if isinstance(report, list):  # one entry per framework when several run
        (report,) = [r for r in report if r.get("check_type") == "bicep"]
    report["returncode"] = proc.returncode
    return report


def test_checkov_version(checkov_report: dict[str, Any]) -> None:
    assert checkov_report["summary"]["checkov_version"] == "3.3.30"


def test_checkov_finds_no_failures(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    failed = [
        f"{c['check_id']} {c['check_name']} {c['file_path']} {c['resource']}"
        for c in checkov_report["results"].get("failed_checks", [])
    ]
    assert failed == []
    assert summary["failed"] == 0
    assert summary["parsing_errors"] == 0, "checkov exits 0 on parse errors; they must be zero"
    assert summary["passed"] > 0
    assert summary["resource_count"] > 0
    assert checkov_report["returncode"] == 0


def test_checkov_skips_are_justified_in_readme() -> None:
    readme = (INFRA / "README.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\|\s*`?(CKV_[A-Z0-9_]+)`?\s*\|(.+)\|\s*$", readme, re.M))
    assert set(table) == set(CHECKOV_SKIPS), "infra/README.md skip table and CHECKOV_SKIPS differ"
    assert all(len(reason.strip()) > 20 for reason in table.values())


# ------------------------------------------------------------------------------- JSON / YAML files


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "relative",
    [
        "host.json",
        "local.settings.sample.json",
        "infra/main.parameters.json",
        "infra/abbreviations.json",
        "infra/host.dts.json",
    ],
)
def test_json_files_are_valid(relative: str) -> None:
    assert isinstance(_json(ROOT / relative), dict)


def _common_host_settings(host: dict[str, Any]) -> None:
    assert host["version"] == "2.0"
    assert host["extensions"]["durableTask"]["hubName"] == "%TASKHUB_NAME%"
    assert host["extensions"]["http"]["routePrefix"] == "api"
    assert host["extensions"]["queues"] == {
        "maxDequeueCount": 5,
        "visibilityTimeout": "00:00:00",
        "maxPollingInterval": "00:00:02",
    }
    logging_ = host["logging"]
    assert logging_["applicationInsights"]["samplingSettings"] == {
        "isEnabled": True,
        "excludedTypes": "Request",
    }
    assert logging_["logLevel"] == {"default": "Information", "DurableTask.Core": "Warning"}
    assert host["functionTimeout"] == "00:30:00"


def test_host_json() -> None:
    host = _json(ROOT / "host.json")
    _common_host_settings(host)
    assert host["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }
    provider = host["extensions"]["durableTask"]["storageProvider"]
    assert provider["maxQueuePollingInterval"] == "00:00:10"
    assert "type" not in provider, "the default backend is Azure Storage"


def test_host_dts_json() -> None:
    host = _json(INFRA / "host.dts.json")
    _common_host_settings(host)
    assert host["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle.Preview",
        "version": "[4.29.0, 5.0.0)",
    }
    assert host["extensions"]["durableTask"]["storageProvider"] == {
        "type": "azureManaged",
        "connectionStringName": "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
    }


def test_local_settings_sample() -> None:
    sample = _json(ROOT / "local.settings.sample.json")
    assert sample["IsEncrypted"] is False
    values = sample["Values"]
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert values["TASKHUB_NAME"] == "durableagent"
    for key in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_CHAT_DEPLOYMENT_NAME", "OPENAI_API_KEY"):
        assert values[key] == "", f"{key} must ship empty"
    assert all(isinstance(v, str) for v in values.values()), "local.settings Values must be strings"


def test_main_parameters_match_main_bicep() -> None:
    text = (INFRA / "main.bicep").read_text(encoding="utf-8")
    declared = set(re.findall(r"^param\s+(\w+)\s", text, re.M))
    required = set(re.findall(r"^param\s+(\w+)\s+\w+\s*$", text, re.M))  # no default value
    params = _json(INFRA / "main.parameters.json")["parameters"]
    assert set(params) <= declared, sorted(set(params) - declared)
    assert required <= set(params), sorted(required - set(params))
    assert params["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert params["location"]["value"] == "${AZURE_LOCATION}"
    assert params["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"
    assert params["useDurableTaskScheduler"]["value"] == "${USE_DURABLE_TASK_SCHEDULER=false}"


def test_abbreviations_cover_main_bicep() -> None:
    abbreviations = _json(INFRA / "abbreviations.json")
    used = set(re.findall(r"\babbrs\.(\w+)", (INFRA / "main.bicep").read_text(encoding="utf-8")))
    assert used and used <= set(abbreviations), sorted(used - set(abbreviations))


def test_azure_yaml() -> None:
    doc = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    assert doc["name"]
    api = doc["services"]["api"]
    assert api["project"] == "."
    assert api["language"] == "python"
    assert api["host"] == "function"
    assert doc.get("infra", {}).get("path", "infra") == "infra"
