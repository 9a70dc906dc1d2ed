"""Headless Chromium for the reports page's browser tests and screenshot, found or unpacked.

The pinned npm package @sparticuz/chromium (package-lock.json) carries a headless Chromium
compressed inside it, so `npm ci` brings the browser without root or a download of its own;
it is unpacked once into build/chromium/. Debian's `chromium` (apt) or DUFFBEER_CHROMIUM
work too. Chromium starts with the network features off: nothing here reaches the network.

    python -m duffbeer_local.browser            # print the browser's path (unpack if needed)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

from duffbeer.errors import BrowserMissingError

PROJECT_DIR = Path(__file__).resolve().parents[1]
CHROMIUM_ENV = "DUFFBEER_CHROMIUM"
NPM_PACKAGE = "@sparticuz/chromium"
# Without these Chromium contacts Google's services at start (the network is closed here).
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
INSTALL_HINT = (
    "run `npm ci` in the project (it brings the pinned @sparticuz/chromium, unpacked into "
    "build/chromium/ on first use; needs Node.js), or install Debian's chromium "
    "(apt-get install chromium), or set DUFFBEER_CHROMIUM to a Chromium binary"
)
# The package's own code unpacks the binary (and its fonts and GL libraries) into
# os.tmpdir(), which TMPDIR sets.
_UNPACK_SCRIPT = (
    "import chromium from '@sparticuz/chromium';"
    "process.stdout.write(await chromium.executablePath());"
)


def _unpack(project_dir: Path, target: Path) -> Path:
    """Unpack the npm package's Chromium into `target` (atomically: a half-unpacked binary
    from an interrupted run is never found later)."""
    node = shutil.which("node")
    if node is None:
        raise BrowserMissingError(f"node is not on PATH to unpack {NPM_PACKAGE}: {INSTALL_HINT}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    try:
        result = subprocess.run(
            [node, "--input-type=module", "-e", _UNPACK_SCRIPT],
            cwd=project_dir,
            env={**os.environ, "TMPDIR": str(staging)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0 or not (staging / "chromium").is_file():
            raise BrowserMissingError(
                f"unpacking {NPM_PACKAGE} failed ({result.stderr.strip()[-400:]}): {INSTALL_HINT}"
            )
        try:
            staging.rename(target)
        except OSError:
            if not (target / "chromium").is_file():  # another process won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "chromium"


def chromium_path(project_dir: Path = PROJECT_DIR) -> Path:
    """The Chromium to drive: DUFFBEER_CHROMIUM, else the pinned npm package's (unpacked on
    first use), else Debian's. Raises BrowserMissingError saying how to install one."""
    chosen = os.environ.get(CHROMIUM_ENV)
    if chosen:
        path = Path(chosen)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BrowserMissingError(f"{CHROMIUM_ENV}={chosen} is not an executable file")
        return path
    unpacked = project_dir / "build" / "chromium"
    if (unpacked / "chromium").is_file():
        return unpacked / "chromium"
    if (project_dir / "node_modules" / NPM_PACKAGE / "package.json").is_file():
        return _unpack(project_dir, unpacked)
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise BrowserMissingError(f"no headless Chromium found: {INSTALL_HINT}")


@contextmanager
def launch(project_dir: Path = PROJECT_DIR) -> Iterator[Browser]:
    """A headless Chromium driven by Playwright (each context gets a fresh profile)."""
    executable = chromium_path(project_dir)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=list(CHROMIUM_FLAGS)
        )
        try:
            yield browser
        finally:
            browser.close()


def screenshot(url: str, out: Path, *, width: int = 1400, timeout_s: float = 60.0) -> Path:
    """A full-page PNG of the reports page at `url` once it has drawn every section (numbers
    formatted as in an en-US browser)."""
    with launch() as browser:
        page = browser.new_page(viewport={"width": width, "height": 900}, locale="en-US")
        page.goto(url)
        page.wait_for_selector("body[data-state=ready]", timeout=timeout_s * 1000)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    del argv
    try:
        sys.stdout.write(f"{chromium_path()}\n")
    except BrowserMissingError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
