"""`python -m duffbeer_local` as a user runs it: separate processes, judged by output and HTTP."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

import pytest

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).resolve().parents[2]
# A header without the status column: the run fails in ValidateOrders, before any Spark.
INVALID = (
    "client_id,client_name,order_id,product_id,product_description,product_price,"
    "product_ccf,product_volume,point_of_sale_channel\n"
    "1001,Moe's Tavern,5678,102,Duff Classic,2.50,6,0.33,Retail\n"
)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "duffbeer_local", *args]


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_ENDPOINT") and k != "DUFFBEER_API_KEY"
    }
    env["SAGEMAKER_SUPPRESS_V2_WARNING"] = "1"
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_demo_exits_non_zero_naming_the_failed_state(tmp_path: Path) -> None:
    bad = tmp_path / "orders.csv"
    bad.write_text(INVALID)
    result = subprocess.run(
        _cli("--state-dir", str(tmp_path / "state"), "demo", "--file", str(bad)),
        cwd=PROJECT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "-> ValidateOrders" in result.stdout
    assert "FAILED in state ValidateOrders: MissingColumnsError" in result.stdout


def _get_with_key(url: str, key: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"x-api-key": key})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def _collected(stream: IO[str]) -> queue.Queue[str]:
    """The stream's lines as they come, read on a thread (readline alone could block)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    return lines


def test_serve_reports_health_then_processes_the_inbox_and_lists_batches(tmp_path: Path) -> None:
    state, port = tmp_path / "state", _free_port()
    server = subprocess.Popen(
        _cli("--state-dir", str(state), "serve", "--port", str(port)),
        cwd=PROJECT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None
    lines, output = _collected(server.stdout), []
    try:
        # Given a serve that is up: it prints the API key once the stack is deployed
        deadline = time.monotonic() + 240
        key = None
        while key is None and time.monotonic() < deadline and server.poll() is None:
            try:
                output.append(lines.get(timeout=1))
            except queue.Empty:
                continue
            found = re.search(r"\(x-api-key: (\S+)\)", output[-1])
            key = found.group(1) if found else None
        assert key is not None, f"serve never printed its key (exit {server.poll()})"
        assert _get(f"http://127.0.0.1:{port}/health")[0] == 200

        # When a file is dropped into the inbox
        (state / "inbox" / "drop.csv").write_text(INVALID)
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not runs:
            runs = _get_with_key(f"http://127.0.0.1:{port}/batches", key)[1]["items"]
            time.sleep(0.5)

        # Then it was uploaded, processed and filed, and the batch history says how it ended
        [run] = runs
        assert (run["file"], run["status"], run["error"]["name"]) == (
            "s3://duffbeer-input-orders/drop.csv",
            "FAILED",
            "MissingColumnsError",
        )
        while (
            time.monotonic() < deadline and not (state / "inbox" / "failed" / "drop.csv").exists()
        ):
            time.sleep(0.2)
        assert (state / "inbox" / "failed" / "drop.csv").read_text() == INVALID
        # And `batches` lists it with the key from serve's key file (the owner's alone), or
        # from the variable serve printed; never from its own command line
        key_file = state / "api-key"
        assert (key_file.read_text().strip(), key_file.stat().st_mode & 0o777) == (key, 0o600)
        from_file = subprocess.run(
            _cli("--state-dir", str(state), "batches", "--port", str(port)),
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert from_file.returncode == 0, from_file.stderr
        assert "drop.csv" in from_file.stdout and "MissingColumnsError" in from_file.stdout
        from_variable = subprocess.run(
            _cli("--state-dir", str(tmp_path / "elsewhere"), "batches", "--port", str(port)),
            env={**_env(), "DUFFBEER_API_KEY": key},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert from_variable.stdout == from_file.stdout
        without_key = subprocess.run(
            _cli("--state-dir", str(tmp_path / "elsewhere"), "batches", "--port", str(port)),
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert without_key.returncode == 1
        assert "no API key: set DUFFBEER_API_KEY" in without_key.stderr
        # And the local AWS endpoint answers a tool given the credentials serve printed (the
        # line is also the content of a file only its owner reads), and nobody else
        printed = next(line for line in output if line.strip().startswith("export AWS_"))
        exports = dict(word.split("=", 1) for word in printed.split("(also in")[0].split()[1:])
        env_file = state / "aws.env"
        assert env_file.stat().st_mode & 0o777 == 0o600
        assert env_file.read_text().startswith(printed.split("(also in")[0].strip())
        list_buckets = [
            sys.executable,
            "-c",
            "import boto3; print(sorted(b['Name'] for b in boto3.client('s3').list_buckets()"
            "['Buckets']))",
        ]
        tool_env = {k: v for k, v in _env().items() if not k.startswith("AWS_")}
        given = subprocess.run(
            list_buckets,
            env={**tool_env, **exports, "AWS_REGION": "us-east-1"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert given.returncode == 0, given.stderr
        assert "duffbeer-input-orders" in given.stdout
        other = {**exports, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        refused = subprocess.run(
            list_buckets,
            env={**tool_env, **other, "AWS_REGION": "us-east-1"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode == 1
        assert "InvalidClientTokenId" in refused.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    time.sleep(0.5)  # the reader thread drains what serve printed last
    while not lines.empty():
        output.append(lines.get())
    assert server.returncode == 0, "".join(output)
    assert "stopped" in "".join(output)
    assert f"export DUFFBEER_API_KEY={key}" in "".join(output)
    assert not (state / "api-key").exists()  # the key died with the stack
    assert not (state / "aws.env").exists()  # and so did the endpoint's credentials
    # serve printed the reports page's URL, the key in its fragment (never sent to a server)
    assert f"dashboard           http://127.0.0.1:{port}/dashboard#key=" in "".join(output)
