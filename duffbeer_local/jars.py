"""The JVM jars local Spark needs for Apache Iceberg, pinned by version and SHA-256.

AWS Glue 5.0 ships Iceberg 1.7.1 for Spark 3.5 (`--datalake-formats iceberg`); locally the
same two jars go on spark-submit's `--jars`: the Spark runtime and the AWS bundle (Glue
catalog, S3FileIO, the AWS SDK v2). `make setup` fetches them from Maven Central once
(`python -m duffbeer_local.jars`); nothing downloads a jar at run time.

    python -m duffbeer_local.jars [DIR]     # fetch into DIR (default build/jars), verify
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from duffbeer.errors import LocalModeError
from duffbeer.iceberg import ICEBERG_VERSION

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_JARS_DIR = PROJECT_DIR / "build" / "jars"
# A Maven repository mirror can stand in for Maven Central (same layout).
REPOSITORY_ENV = "DUFFBEER_MAVEN_REPOSITORY"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"


@dataclass(frozen=True)
class Jar:
    group: str
    artifact: str
    version: str
    sha256: str

    @property
    def file_name(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    def url(self, repository: str) -> str:
        group_path = self.group.replace(".", "/")
        return (
            f"{repository.rstrip('/')}/{group_path}/{self.artifact}/{self.version}/{self.file_name}"
        )


JARS: tuple[Jar, ...] = (
    Jar(
        "org.apache.iceberg",
        "iceberg-spark-runtime-3.5_2.12",
        ICEBERG_VERSION,
        "cdf7357865d8d91764e0f147a2d76bc3e1e2b8792ddc0d3be329b3d34aaf218c",
    ),
    Jar(
        "org.apache.iceberg",
        "iceberg-aws-bundle",
        ICEBERG_VERSION,
        "5d7c0baf877ee4296c4f98425165484404af4227fb487f1847a3cb1a577dfc3b",
    ),
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def jar_paths(directory: Path = DEFAULT_JARS_DIR) -> list[Path]:
    """The pinned jars in `directory`; LocalModeError naming the fix when one is missing."""
    paths = [directory / jar.file_name for jar in JARS]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise LocalModeError(
            f"Iceberg jars missing from {directory}: {', '.join(missing)}; "
            "run `make setup` (or `python -m duffbeer_local.jars`)"
        )
    return paths


def fetch(directory: Path = DEFAULT_JARS_DIR, repository: str | None = None) -> list[Path]:
    """Download every pinned jar not already present with its checksum; verify each."""
    repository = repository or os.environ.get(REPOSITORY_ENV) or MAVEN_CENTRAL
    directory.mkdir(parents=True, exist_ok=True)
    for jar in JARS:
        target = directory / jar.file_name
        if target.is_file() and _sha256(target) == jar.sha256:
            continue
        url = jar.url(repository)
        if not url.startswith(("https://", "http://")):
            raise LocalModeError(f"{REPOSITORY_ENV} must be an http(s) URL, not {repository!r}")
        with tempfile.NamedTemporaryFile(dir=directory, delete=False) as partial:
            try:
                with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310
                    shutil.copyfileobj(response, partial)
            except OSError as e:
                Path(partial.name).unlink(missing_ok=True)
                raise LocalModeError(f"could not download {url}: {e}") from e
        got = _sha256(Path(partial.name))
        if got != jar.sha256:
            Path(partial.name).unlink(missing_ok=True)
            raise LocalModeError(f"{url} has SHA-256 {got}, expected {jar.sha256}")
        Path(partial.name).replace(target)
    return jar_paths(directory)


def main(argv: list[str]) -> int:
    directory = Path(argv[1]) if len(argv) > 1 else DEFAULT_JARS_DIR
    try:
        paths = fetch(directory)
    except LocalModeError as e:
        print(f"error: {e}", file=sys.stderr)  # noqa: T201
        return 1
    for path in paths:
        print(f"{path} ok")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
