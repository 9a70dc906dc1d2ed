"""`make deploy` against a moto server: the diff first, then the deploy (issue 24).

Runs the Makefile's recipe as a user would, with one shortcut to keep it cheap: DEPLOY_VENV
points at a stand-in venv whose python is this test's interpreter (the full .venv holds the
[deploy] extra), so make does not build .venv-deploy. node_modules is the checkout's, which
make test's npm ci has filled; the recipe then runs no npm at all.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from deploy.stack import FUNCTIONS

pytestmark = pytest.mark.functional

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:duffbeer-orders-etl"


def _stand_in_venv(path: Path) -> Path:
    """A DEPLOY_VENV make takes as installed: bin/python runs this interpreter."""
    python = path / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    (path / ".installed-deploy").touch()  # newer than every requirements file
    return path


def _make_deploy(endpoint: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    args = f"--endpoint-url {endpoint} --region {REGION} --build-dir {tmp_path / 'build'}"
    # An outer make (make test) must not pass its flags and level down.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(ROOT),
            "deploy",
            f"DEPLOY_VENV={_stand_in_venv(tmp_path / 'venv')}",
            f"PYTHON={sys.executable}",
            f"DEPLOY_ARGS={args}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
    )


def test_make_deploy_prints_the_diff_then_deploys(moto_server: str, tmp_path: Path) -> None:
    # Given an empty account on a moto server, and the chart library make test's npm ci brought
    if not (ROOT / "node_modules" / "chart.js" / "package.json").is_file():
        pytest.fail("node_modules/chart.js is missing: run npm ci (make test does) first")
    # When make deploy runs
    result = _make_deploy(moto_server, tmp_path)
    # Then it succeeds
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    diff_at = next(i for i, line in enumerate(lines) if "create_workflow.py diff " in line)
    deploy_at = next(i for i, line in enumerate(lines) if "create_workflow.py deploy " in line)
    # And the diff ran first, and said the state machine was still to be created
    assert diff_at < deploy_at, result.stdout
    diff = "\n".join(lines[diff_at + 1 : deploy_at])
    assert re.search(r"\bcreate\b.*\bduffbeer-orders-etl\b", diff), result.stdout
    # And the deploy after it created the stack
    sfn = boto3.client("stepfunctions", region_name=REGION, endpoint_url=moto_server)
    assert sfn.describe_state_machine(stateMachineArn=STATE_MACHINE)["name"] == (
        "duffbeer-orders-etl"
    )
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_server)
    buckets = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
    assert {"duffbeer-input-orders", "duffbeer-processed-orders"} <= buckets
    functions = boto3.client("lambda", region_name=REGION, endpoint_url=moto_server)
    deployed = {fn["FunctionName"] for fn in functions.list_functions()["Functions"]}
    assert len(deployed) == len(FUNCTIONS)
    assert (tmp_path / "build" / "powertools_layer.zip").is_file()
