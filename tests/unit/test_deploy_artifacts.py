"""Reproducible deployment archives (deploy/artifacts.py)."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deploy import artifacts
from duffbeer.errors import ConfigurationError


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return _tree(
        tmp_path / "project",
        {
            "lambdas/__init__.py": "",
            "lambdas/start_etl/__init__.py": "",
            "lambdas/start_etl/handler.py": "def handler(event, context): ...\n",
            "lambdas/start_etl/__pycache__/handler.cpython-311.pyc": "bytecode",
            "lambdas/api/handler.py": "other function\n",
            "duffbeer/__init__.py": "",
            "duffbeer/naming.py": "NAME = 1\n",
            "glue_jobs/__init__.py": "",
            "glue_jobs/transform_orders.py": "main()\n",
            "tests/test_x.py": "not shipped\n",
        },
    )


def test_lambda_zip_holds_the_handler_package_and_the_shared_package_only(
    project: Path, tmp_path: Path
) -> None:
    # Given a project tree / When the start_etl zip is built
    path = artifacts.build_lambda_zip("start_etl", tmp_path / "out", root=project)
    # Then it holds lambdas/__init__.py, its own package and duffbeer/, no bytecode
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == [
            "duffbeer/__init__.py",
            "duffbeer/naming.py",
            "lambdas/__init__.py",
            "lambdas/start_etl/__init__.py",
            "lambdas/start_etl/handler.py",
        ]
        assert archive.read("lambdas/start_etl/handler.py") == b"def handler(event, context): ...\n"
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_rebuilding_gives_identical_bytes_and_a_change_gives_a_new_hash(
    project: Path, tmp_path: Path
) -> None:
    # Given a zip built once
    first = artifacts.build_lambda_zip("start_etl", tmp_path / "a", root=project)
    first_sha = artifacts.code_sha256(first)
    # When it is rebuilt later from the same sources
    (project / "duffbeer" / "naming.py").touch()
    second = artifacts.build_lambda_zip("start_etl", tmp_path / "b", root=project)
    # Then the bytes are the same; an edited source changes the hash
    assert first.read_bytes() == second.read_bytes()
    (project / "duffbeer" / "naming.py").write_text("NAME = 2\n")
    third = artifacts.build_lambda_zip("start_etl", tmp_path / "c", root=project)
    assert artifacts.code_sha256(third) != first_sha


def test_glue_libs_zip_holds_duffbeer_and_glue_jobs(project: Path, tmp_path: Path) -> None:
    path = artifacts.build_glue_libs_zip(tmp_path, root=project)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == [
            "duffbeer/__init__.py",
            "duffbeer/naming.py",
            "glue_jobs/__init__.py",
            "glue_jobs/transform_orders.py",
        ]


def test_missing_package_is_a_configuration_error(project: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="lambdas/nope"):
        artifacts.build_lambda_zip("nope", tmp_path, root=project)


def test_layer_holds_powertools_and_its_dependencies_under_python(tmp_path: Path) -> None:
    # Given this environment's pinned Powertools / When the layer is built
    path = artifacts.build_layer_zip(tmp_path)
    # Then Lambda finds the packages under python/, without bytecode
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    assert "python/aws_lambda_powertools/__init__.py" in names
    assert "python/aws_lambda_powertools/event_handler/api_gateway.py" in names
    assert "python/typing_extensions.py" in names
    assert "python/pydantic/__init__.py" in names
    assert not [name for name in names if name.endswith(".pyc")]
    assert all(name.startswith("python/") for name in names)


def test_the_real_functions_package_from_the_repository(tmp_path: Path) -> None:
    # Given the repository's own API package / When zipped
    path = artifacts.build_lambda_zip("api", tmp_path)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    # Then the handler string lambdas.api.handler.handler resolves inside the zip
    assert {"lambdas/__init__.py", "lambdas/api/handler.py", "duffbeer/contract.py"} <= names
    assert not [
        name
        for name in names
        if not name.startswith(("lambdas/api/", "duffbeer/")) and name != "lambdas/__init__.py"
    ]


def _npm_project(root: Path, installed: str, pinned: str) -> Path:
    lock = json.dumps({"packages": {"node_modules/chart.js": {"version": pinned}}})
    return _tree(
        root,
        {
            "lambdas/__init__.py": "",
            "lambdas/api/handler.py": "def handler(event, context): ...\n",
            "lambdas/api/dashboard/static/app.js": "'use strict';\n",
            "duffbeer/__init__.py": "",
            "package-lock.json": lock,
            "node_modules/chart.js/package.json": json.dumps({"version": installed}),
            "node_modules/chart.js/dist/chart.umd.min.js": "/* chart */\n",
            "node_modules/chart.js/LICENSE.md": "MIT\n",
        },
    )


def test_the_api_zip_carries_the_pinned_chart_library_and_its_licence(tmp_path: Path) -> None:
    project = _npm_project(tmp_path / "p", installed="4.6.1", pinned="4.6.1")
    archive = artifacts.build_lambda_zip("api", tmp_path / "out", root=project)
    with zipfile.ZipFile(archive) as opened:
        names = set(opened.namelist())
        assert opened.read("lambdas/api/dashboard/vendor/chart.umd.min.js") == b"/* chart */\n"
    assert "lambdas/api/dashboard/static/app.js" in names
    assert "lambdas/api/dashboard/vendor/chart.js.LICENSE.md" in names
    assert not any(name.startswith("node_modules/") for name in names)


def test_a_chart_library_other_than_the_pinned_one_is_refused(tmp_path: Path) -> None:
    project = _npm_project(tmp_path / "p", installed="4.5.0", pinned="4.6.1")
    with pytest.raises(ConfigurationError, match=r"chart.js 4.5.0 is installed; .* pins 4.6.1"):
        artifacts.build_lambda_zip("api", tmp_path / "out", root=project)


def test_the_api_zip_needs_npm_ci_first(tmp_path: Path) -> None:
    project = _npm_project(tmp_path / "p", installed="4.6.1", pinned="4.6.1")
    (project / "node_modules" / "chart.js" / "package.json").unlink()
    with pytest.raises(ConfigurationError, match="run npm ci"):
        artifacts.build_lambda_zip("api", tmp_path / "out", root=project)


@pytest.mark.parametrize(
    ("tags", "runs"),
    [
        (["py3-none-any"], True),
        (["py2-none-any", "py3-none-any"], True),
        (["cp311-cp311-manylinux2014_x86_64", "cp311-cp311-manylinux_2_17_x86_64"], True),
        (["cp311-cp311-manylinux_2_5_x86_64", "cp311-cp311-manylinux_2_28_x86_64"], True),
        (["cp38-abi3-manylinux_2_17_x86_64"], True),
        ([], True),
        (["cp311-cp311-macosx_11_0_arm64"], False),
        (["cp311-cp311-win_amd64"], False),
        (["cp311-cp311-manylinux_2_17_aarch64"], False),
        (["cp312-cp312-manylinux_2_17_x86_64"], False),
        (["cp312-abi3-manylinux_2_17_x86_64"], False),
    ],
)
def test_which_wheels_run_on_lambda_python311_x86_64(tags: list[str], runs: bool) -> None:
    assert artifacts.runs_on_lambda(tags) is runs


def _fake_pip(calls: list[list[str]]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Stands in for `pip install --target`: writes each name==version as a Lambda wheel would
    install it, with one module whose text says where it came from (no network)."""

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        target = Path(command[command.index("--target") + 1])
        for pin in (arg for arg in command if "==" in arg):
            name, version = pin.split("==")
            module = name.replace("-", "_")
            info = target / f"{module}-{version}.dist-info"
            info.mkdir(parents=True)
            (info / "METADATA").write_text(
                f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            )
            (info / "WHEEL").write_text("Tag: cp311-cp311-manylinux_2_17_x86_64\n")
            (target / module).mkdir()
            (target / module / "__init__.py").write_text("built for Lambda\n")
            (info / "RECORD").write_text(
                f"{module}/__init__.py,,\n{info.name}/METADATA,,\n{info.name}/WHEEL,,\n"
                f"{info.name}/RECORD,,\n"
            )
        return subprocess.CompletedProcess(command, 0, "", "")

    return run


def _pretend_this_machine_is_a_mac(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    real = artifacts._wheel_tags

    def tags(dist: importlib.metadata.Distribution) -> list[str]:
        if dist.metadata["Name"] in names and "layer-packages" not in str(dist.locate_file("")):
            return ["cp311-cp311-macosx_11_0_arm64"]
        return real(dist)

    monkeypatch.setattr(artifacts, "_wheel_tags", tags)


def test_off_linux_x86_64_the_compiled_wheels_are_installed_for_lambda(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an environment whose compiled distributions are macOS wheels
    _pretend_this_machine_is_a_mac(monkeypatch, "pydantic_core", "wrapt")
    calls: list[list[str]] = []
    monkeypatch.setattr(artifacts.subprocess, "run", _fake_pip(calls))
    # When the layer is built
    path = artifacts.build_layer_zip(tmp_path)
    # Then pip installed exactly those, at this environment's versions, for Lambda's platform
    (command,) = calls
    pins = sorted(arg for arg in command if "==" in arg)
    versions = {name: importlib.metadata.version(name) for name in ("pydantic-core", "wrapt")}
    assert pins == [f"pydantic-core=={versions['pydantic-core']}", f"wrapt=={versions['wrapt']}"]
    options = " ".join(command)
    assert "--platform manylinux2014_x86_64 --only-binary=:all: --python-version 3.11" in options
    assert "--implementation cp" in options
    assert "--no-deps" in command
    # And the layer holds the Lambda builds of those, the environment's files of the others
    with zipfile.ZipFile(path) as archive:
        assert archive.read("python/pydantic_core/__init__.py") == b"built for Lambda\n"
        assert archive.read("python/wrapt/__init__.py") == b"built for Lambda\n"
        names = set(archive.namelist())
    assert "python/aws_lambda_powertools/__init__.py" in names
    assert "python/pydantic/__init__.py" in names


def test_a_failed_install_for_lambda_names_the_other_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pretend_this_machine_is_a_mac(monkeypatch, "pydantic_core")

    def offline(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(artifacts.subprocess, "run", offline)
    with pytest.raises(ConfigurationError, match=r"pydantic-core .*Lambda build image"):
        artifacts.build_layer_zip(tmp_path)


@pytest.mark.skipif(
    (sys.platform, platform.machine()) != ("linux", "x86_64"), reason="Linux x86_64 only"
)
def test_on_linux_x86_64_the_layer_comes_from_this_environment_without_pip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Linux x86_64, where the installed wheels are Lambda's / When the layer is built
    def no_pip(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        raise AssertionError(f"pip ran: {command}")

    monkeypatch.setattr(artifacts.subprocess, "run", no_pip)
    first = artifacts.build_layer_zip(tmp_path / "a")
    # Then pip is not run, and a rebuild gives the same bytes
    assert first.read_bytes() == artifacts.build_layer_zip(tmp_path / "b").read_bytes()
