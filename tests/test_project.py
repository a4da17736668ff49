"""The project's own promises: one dependency list for pip and conda, notebooks that stay reviewable."""

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
