"""The install groups: what a deploy-only install (`pip install -e '.[deploy]'`) pulls in,
resolved from the installed distributions' own metadata (their Requires-Dist)."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def _extra_files() -> dict[str, Path]:
    dynamic = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["dynamic"]
    extras = {"": dynamic["dependencies"]["file"]}
    extras |= {name: spec["file"] for name, spec in dynamic["optional-dependencies"].items()}
    return {name: ROOT / files[0] for name, files in extras.items()}


def _closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution pip installs for `requirements` (markers evaluated here, extras
    followed), from what this environment has installed."""
    seen: set[str] = set()
    pending = [(requirement, "") for requirement in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        requires = importlib.metadata.distribution(name).requires or []
        for line in requires:
            child = Requirement(line)
            for wanted in requirement.extras or {""}:
                pending.append((child, wanted))
    return {key.split("[", 1)[0] for key in seen}


def test_every_extra_is_a_pinned_file_of_requirements() -> None:
    files = _extra_files()
    assert set(files) == {"", "deploy", "spark", "local", "dev"}
    for path in files.values():
        for requirement in _requirements(path):
            assert str(requirement.specifier).startswith("=="), (path.name, str(requirement))


@pytest.mark.parametrize("heavy", ["pyspark", "pyarrow", "moto", "duckdb", "pyiceberg"])
def test_a_deploy_only_install_pulls_no_spark_arrow_or_moto(heavy: str) -> None:
    files = _extra_files()
    deploy = _closure(_requirements(files[""]) + _requirements(files["deploy"]))
    assert "boto3" in deploy and "stepfunctions" in deploy
    assert heavy not in deploy
    # (while the full install has it: the check would see it if deploy's closure held it)
    everything = _closure([r for path in files.values() for r in _requirements(path)])
    assert heavy in everything
