"""Reproducible deployment archives: Lambda zips, the Glue libraries zip, the Powertools layer."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from deploy.stack import PROJECT_DIR
from duffbeer.errors import ConfigurationError

# A fixed timestamp and mode for every entry: the same sources always give the same bytes,
# so a re-run recognises unchanged code by its hash.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o644 << 16

# Third-party code the functions import that the Lambda Python runtime lacks (it ships boto3,
# botocore and jmespath). pydantic is what Powertools' API resolver and Parser need (request
# validation, the OpenAPI document, the step payload models); pydantic-settings reads the
# functions' settings; aws-xray-sdk (with wrapt) is the Tracer's X-Ray client.
LAYER_DISTRIBUTIONS: tuple[str, ...] = (
    "aws-lambda-powertools",
    "typing-extensions",
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-inspection",
    "pydantic-settings",
    "python-dotenv",
    "aws-xray-sdk",
    "wrapt",
)
POWERTOOLS_VERSION = "3.37.0"
# Browser code a function serves, copied from node_modules at build time (no CDN): the
# reports page's chart library, with its licence (docs/adr/0044).
VENDORED_FILES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "api": (
        ("chart.js", "dist/chart.umd.min.js", "lambdas/api/dashboard/vendor/chart.umd.min.js"),
        ("chart.js", "LICENSE.md", "lambdas/api/dashboard/vendor/chart.js.LICENSE.md"),
    ),
}
# Compiled wheels must match the functions' runtime and architecture (deploy/stack.py:
# python3.11 on x86_64): a wheel tag such as cp311-cp311-manylinux_2_17_x86_64, cp38-abi3-
# manylinux2014_x86_64, or a pure-Python py3-none-any.
_LAMBDA_BINARY_TAG = re.compile(r"^cp3(\d+)-(cp311|abi3)-manylinux[0-9a-z_]*_x86_64$")
_PURE_TAG = re.compile(r"^(py3|py2\.py3|cp311)-none-any$")
# Where this environment's wheels do not run on Lambda (macOS, Windows, Linux on ARM), pip
# installs the same pinned versions as built for Lambda's platform; the layer takes those.
LAMBDA_PIP_PLATFORM: tuple[str, ...] = (
    "--platform",
    "manylinux2014_x86_64",
    "--only-binary=:all:",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
)


def _source_files(root: Path, package: str) -> list[tuple[Path, str]]:
    base = root / package
    if not base.is_dir():
        raise ConfigurationError(f"cannot package {package}/: no such directory under {root}")
    files = []
    for path in sorted(base.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix in {".pyc", ".pyo"}:
            continue
        files.append((path, path.relative_to(root).as_posix()))
    return files


def _write_zip(dest: Path, entries: Iterable[tuple[Path, str]]) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for source, arcname in sorted(entries, key=lambda entry: entry[1]):
            info = zipfile.ZipInfo(arcname, date_time=_ZIP_EPOCH)
            info.external_attr = _FILE_MODE
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes())
    tmp.replace(dest)
    return dest


def vendored_npm_file(root: Path, package: str, path: str) -> Path:
    """A file of an npm package installed by `npm ci`, checked to be the version that
    package-lock.json pins (the deployed page must serve exactly that code)."""
    installed = root / "node_modules" / package
    try:
        lock = json.loads((root / "package-lock.json").read_text())
        pinned = lock["packages"][f"node_modules/{package}"]["version"]
    except (OSError, ValueError, KeyError) as e:
        raise ConfigurationError(f"package-lock.json does not pin {package}") from e
    try:
        version = json.loads((installed / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError) as e:
        raise ConfigurationError(
            f"{package} is not installed under {root / 'node_modules'}: run npm ci"
        ) from e
    if version != pinned:
        raise ConfigurationError(
            f"{package} {version} is installed; package-lock.json pins {pinned}: run npm ci"
        )
    if not (installed / path).is_file():
        raise ConfigurationError(f"{package} {version} has no {path}")
    return installed / path


def _vendored_files(root: Path, package_name: str) -> list[tuple[Path, str]]:
    entries = []
    for npm_package, path, arcname in VENDORED_FILES.get(package_name, ()):
        entries.append((vendored_npm_file(root, npm_package, path), arcname))
    return entries


def build_lambda_zip(package_name: str, dest_dir: Path, root: Path = PROJECT_DIR) -> Path:
    """lambdas/__init__.py, lambdas/<package_name>/, duffbeer/ and the function's vendored
    browser files, ready for CreateFunction."""
    init = root / "lambdas" / "__init__.py"
    entries = [(init, "lambdas/__init__.py")] if init.exists() else []
    entries += _source_files(root, f"lambdas/{package_name}")
    entries += _source_files(root, "duffbeer")
    entries += _vendored_files(root, package_name)
    return _write_zip(dest_dir / f"lambda_{package_name}.zip", entries)


def build_glue_libs_zip(dest_dir: Path, root: Path = PROJECT_DIR) -> Path:
    """duffbeer/ and glue_jobs/ for the job's --extra-py-files."""
    entries = _source_files(root, "duffbeer") + _source_files(root, "glue_jobs")
    return _write_zip(dest_dir / "duffbeer_libs.zip", entries)


def runs_on_lambda(tags: Iterable[str]) -> bool:
    """Whether a wheel with these WHEEL tags runs on the functions' python3.11 on x86_64 (a
    distribution installed without tags, e.g. from a source tree, is taken as pure Python)."""
    tags = list(tags)
    for tag in tags:
        binary = _LAMBDA_BINARY_TAG.match(tag)
        if _PURE_TAG.match(tag) or (binary and int(binary.group(1)) <= 11):
            return True
    return not tags


def _wheel_tags(dist: importlib.metadata.Distribution) -> list[str]:
    wheel = dist.read_text("WHEEL") or ""
    return [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]


def _installed(name: str) -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError as e:
        raise ConfigurationError(
            f"the layer needs {name}, which is not installed: "
            "pip install -e '.[deploy]' -c constraints.txt"
        ) from e


def install_for_lambda(
    pins: dict[str, str], target: Path
) -> dict[str, importlib.metadata.Distribution]:
    """Installs name==version for Lambda's platform into `target` (pip --platform: wheels only,
    no build, so it works from any OS and architecture), and returns those distributions."""
    shutil.rmtree(target, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        *LAMBDA_PIP_PLATFORM,
        "--target",
        str(target),
        *(f"{name}=={version}" for name, version in sorted(pins.items())),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ConfigurationError(
            f"could not install {', '.join(sorted(pins))} for Lambda (manylinux2014_x86_64, "
            f"CPython 3.11): {result.stderr.strip()[-500:]}; build the layer on Linux x86_64 "
            "or in a Lambda build image (public.ecr.aws/sam/build-python3.11)"
        )
    found = {}
    for name in pins:
        dists = list(importlib.metadata.Distribution.discover(name=name, path=[str(target)]))
        if not dists:
            raise ConfigurationError(f"pip did not install {name} into {target}")
        found[name] = dists[0]
    return found


def _distribution_entries(dist: importlib.metadata.Distribution) -> list[tuple[Path, str]]:
    name = dist.metadata["Name"]
    tags = _wheel_tags(dist)
    if not runs_on_lambda(tags):
        raise ConfigurationError(
            f"{name} is installed for {tags[0]}, not for Lambda's python3.11 on x86_64 Linux"
        )
    entries = []
    for file in dist.files or ():
        posix = PurePosixPath(file.as_posix())
        if posix.parts[0].startswith("..") or "__pycache__" in posix.parts:
            continue
        if posix.suffix in {".pyc", ".pyo"} or posix.name == "RECORD":
            continue
        path = Path(str(dist.locate_file(file)))
        if path.is_file():
            entries.append((path, f"python/{posix}"))
    return entries


def build_layer_zip(dest_dir: Path) -> Path:
    """The Powertools layer (python/ + the pinned distributions). Built from this environment's
    installed files; a distribution whose wheel does not run on Lambda (this machine is not
    Linux x86_64) is replaced by the same version installed for Lambda's platform."""
    version = importlib.metadata.version("aws-lambda-powertools")
    if version != POWERTOOLS_VERSION:
        raise ConfigurationError(
            f"aws-lambda-powertools {version} is installed; the functions are pinned to "
            f"{POWERTOOLS_VERSION}: pip install -e '.[deploy]' -c constraints.txt"
        )
    dists = {name: _installed(name) for name in LAYER_DISTRIBUTIONS}
    foreign = {
        name: dist.version for name, dist in dists.items() if not runs_on_lambda(_wheel_tags(dist))
    }
    if foreign:
        dists |= install_for_lambda(foreign, dest_dir / "layer-packages")
    entries: list[tuple[Path, str]] = []
    for name in LAYER_DISTRIBUTIONS:
        entries += _distribution_entries(dists[name])
    return _write_zip(dest_dir / "powertools_layer.zip", entries)


def code_sha256(path: Path) -> str:
    """The base64 SHA-256 Lambda reports as CodeSha256 for an uploaded zip."""
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode("ascii")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
