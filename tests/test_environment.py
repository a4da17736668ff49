"""pyproject.toml (pip, `make setup`) and environment.yml (conda) list the same packages with the same bounds."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def pip_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {Requirement(r).name.lower(): str(Requirement(r).specifier) for r in listed}


def conda_requirements() -> dict[str, str]:
    dependencies = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    found = {}
    for entry in dependencies:
        if isinstance(entry, str) and entry.split(">")[0].split("=")[0].split("<")[0] not in ("python", "pip"):
            requirement = Requirement(entry)
            found[requirement.name.lower()] = str(requirement.specifier)
    return found


def test_pyproject_and_environment_yml_agree():
    assert pip_requirements() == conda_requirements()


def test_environment_yml_installs_the_project_itself():
    dependencies = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    pip_section = next(entry["pip"] for entry in dependencies if isinstance(entry, dict))
    assert pip_section == ["-e ."]
