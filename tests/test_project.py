"""The project's own promises: one dependency list for pip and conda, notebooks that stay reviewable, the
settings' queue-backend contract."""

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {canonicalize_name(r.name): str(r.specifier) for r in map(Requirement, listed)}


def conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    found = {}
    for entry in env["dependencies"]:
        if not isinstance(entry, str) or entry.split(">")[0].split("=")[0] in {"python", "pip"}:
            continue
        requirement = Requirement(entry)
        found[canonicalize_name(requirement.name)] = str(requirement.specifier)
    return found


def test_environment_yml_and_pyproject_agree_on_every_dependency():
    assert conda_requirements() == pyproject_requirements()


def test_environment_yml_asks_for_the_same_python_as_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f"python{requires}" in env["dependencies"]


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean_but_for_its_verdict(path):
    """Outputs only where nbval compares them (the verdict cell, marked keep_output for nbstripout)."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code[:-1]:
        assert not cell.outputs, f"{path.name}: a cell carries outputs; run `make strip`"
        assert cell.execution_count is None
    verdict = code[-1]
    assert verdict.source.startswith("# NBVAL_CHECK_OUTPUT")
    assert verdict.metadata.get("keep_output") is True
    assert verdict.execution_count == 1, "nbval skips a verdict with no execution count"
    assert verdict.outputs and "FAIL" not in "".join(o.get("text", "") for o in verdict.outputs)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_a_parameters_cell_with_quick_mode_and_the_lab_kernel(path):
    nb = nbformat.read(path, as_version=4)
    parameters = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1
    assert "quick = None" in parameters[0].source
    assert nb.metadata["kernelspec"]["name"] == "tasks-lab"


def site_settings(tmp_path, **env) -> subprocess.CompletedProcess:
    """labsite.settings loaded in a fresh process with these LAB_* variables; prints the HUEY it built."""
    code = "import django; django.setup(); from django.conf import settings; print(settings.HUEY)"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env = {**inherited, "DJANGO_SETTINGS_MODULE": "labsite.settings", "LAB_RUN_DIR": str(tmp_path), **env}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("backend,expected", [
    ("huey_sqlite", {"huey_class": "labsite.huey_classes.LabSqliteHuey", "filename": "/x/q.sqlite3",
                     "synchronous": "full"}),
    ("huey_redis", {"huey_class": "labsite.huey_classes.LabRedisHuey", "url": "redis://127.0.0.1:1/0",
                    "blocking": True, "read_timeout": 0.5}),
])
def test_lab_queue_backend_picks_one_entry_of_the_queue_backends_table(tmp_path, backend, expected):
    done = site_settings(tmp_path, LAB_QUEUE_BACKEND=backend, LAB_HUEY_FILE="/x/q.sqlite3", LAB_HUEY_SYNC="full",
                         LAB_REDIS_URL="redis://127.0.0.1:1/0", LAB_REDIS_READ_TIMEOUT="0.5", LAB_HUEY_IMMEDIATE="1")
    assert done.returncode == 0, done.stderr
    assert ast.literal_eval(done.stdout) == {"name": "labsite", "immediate": True, "results": True, **expected}


def test_without_lab_queue_backend_the_queue_is_huey_on_sqlite(tmp_path):
    done = site_settings(tmp_path)
    assert done.returncode == 0, done.stderr
    assert ast.literal_eval(done.stdout) == {
        "huey_class": "labsite.huey_classes.LabSqliteHuey", "name": "labsite", "immediate": False, "results": True,
        "filename": str(tmp_path / "huey.sqlite3"), "synchronous": "normal"}


@pytest.mark.parametrize("value", ["redis", "sqlite", "postgres"])
def test_an_unknown_queue_backend_is_improperly_configured_and_names_the_choices(tmp_path, value):
    """The choices named are the settings' entries, one for each backend module of helpers.stack.queues."""
    from helpers.stack.queues import all_names

    done = site_settings(tmp_path, LAB_QUEUE_BACKEND=value)
    assert done.returncode != 0
    message = done.stderr.split("django.core.exceptions.ImproperlyConfigured: LAB_QUEUE_BACKEND must be one of ")[1]
    choices, rejected = message.strip().rsplit(", not ", 1)
    assert rejected == repr(value)
    assert sorted(choices.split(", ")) == sorted(all_names())
