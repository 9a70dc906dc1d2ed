"""The create_workflow.py command line: commands, argument checks, console instructions."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deploy.console import UploadOrder, execution_request
from deploy.core import Clients
from deploy.create_workflow import CliArgs, console_execution_input, main
from deploy.stack import StackNames
from duffbeer import manifest, naming

PROJECT = Path(__file__).resolve().parents[2]
# Nothing listens on port 1: any AWS call made during a dry run would fail the command.
DEAD_ENDPOINT = "http://127.0.0.1:1"


def test_the_default_stack_name_names_what_earlier_releases_deployed() -> None:
    assert StackNames.named("duffbeer") == StackNames.build()
    assert CliArgs.from_args(["diff"], {"AWS_REGION": "eu-west-1"}).options.names() == (
        StackNames.build()
    )


def test_a_failing_aws_call_names_the_resource_and_exits_non_zero(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given an endpoint nobody answers on / When deploying
    code = main(
        [
            *("deploy", "--region", "eu-west-1", "--endpoint-url", DEAD_ENDPOINT),
            *("--build-dir", str(tmp_path)),
        ]
    )
    # Then the error says which call failed
    assert code == 1
    assert "error: STS GetCallerIdentity (credentials):" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["destroy", "--force"], "--force is gone: it deleted data. With destroy, --delete-data"),
        (["deploy", "--delete-data"], "unrecognized arguments: --delete-data"),
        (["diff", "--yes"], "unrecognized arguments: --yes"),
        (["--destroy"], "--destroy is now a command: create_workflow.py destroy [options]"),
        (["--dry-run"], "--dry-run is now a command: create_workflow.py diff [options]"),
        ([], "the following arguments are required: COMMAND"),
        (["start-execution"], "the following arguments are required: KEY"),
        (["deploy", "--stack-name", "acme", "--prefix", "x-"], "--stack-name replaces --prefix"),
        (["diff", "--stack-name", "Acme"], "--stack-name 'Acme': use lowercase letters, digits"),
        (["destroy", "--stack-name", "acme-"], "--stack-name 'acme-': use lowercase letters"),
        (["deploy", "--prefix", "X"], "--prefix 'X': use lowercase letters, digits and '-' only"),
    ],
)
def test_usage_errors_exit_2_and_say_why(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        CliArgs.from_args(argv, {"AWS_REGION": "us-east-1"})
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


class _Terminal(io.StringIO):
    """Answers typed at a terminal."""

    def isatty(self) -> bool:
        return True


def test_destroy_asks_first_and_removes_nothing_unless_destroy_is_typed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an endpoint that refuses every connection (any removal would fail loudly)
    argv = ["destroy", "--region", "eu-west-1", "--endpoint-url", DEAD_ENDPOINT]
    # When the user answers anything but "destroy"
    code = main(argv, answers=_Terminal("yes\n"))
    # Then nothing was called and the command says so
    out = capsys.readouterr().out
    assert code == 1
    assert "This removes the stack duffbeer-orders-etl and every resource of it" in out
    assert "Buckets holding data are kept (--delete-data deletes them)." in out
    assert out.endswith("Type 'destroy' to remove it: Not confirmed: nothing removed.\n")


def test_destroy_away_from_a_terminal_needs_yes(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["destroy", "--region", "eu-west-1", "--endpoint-url", DEAD_ENDPOINT],
        answers=io.StringIO("destroy\n"),
    )
    assert code == 2
    assert "give --yes when not at a terminal" in capsys.readouterr().err


def _help(*argv: str) -> str:
    result = subprocess.run(
        [sys.executable, str(PROJECT / "deploy" / "create_workflow.py"), *argv, "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    return " ".join(result.stdout.split())


EXIT_STATUSES = (
    "exit status: 0 done; 1 failed (or the removal was not confirmed); 2 usage error; "
    "3 removed, but buckets holding data were kept (--delete-data deletes them)."
)


def test_help_lists_the_commands_and_the_exit_statuses() -> None:
    text = _help()
    for command in ("deploy", "diff", "destroy", "start-execution"):
        assert re.search(rf"\b{command} \w", text), command
    assert EXIT_STATUSES in text


@pytest.mark.parametrize("command", ["deploy", "diff", "destroy", "start-execution"])
def test_each_command_documents_every_option_and_its_default(command: str) -> None:
    text = _help(command)
    for option in ("--stack-name", "--profile", "--region", "--endpoint-url"):
        assert re.search(re.escape(option) + r" \S+ \w", text), option
    if command in {"deploy", "diff"}:
        for option in ("--log-retention-days", "--glue-workers", "--glue-worker-type"):
            assert re.search(re.escape(option) + r" \S+ \w", text), option
        assert "retention of every log group (default: 30)" in text
    if command == "destroy":
        assert "--delete-data" in text and "--yes" in text
    assert "--force" not in text
    assert EXIT_STATUSES in text


def test_region_and_endpoint_come_from_the_environment_unless_given() -> None:
    env = {"AWS_DEFAULT_REGION": "eu-central-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}
    from_env = CliArgs.from_args(["diff"], env).options
    given = CliArgs.from_args(
        ["diff", "--region", "us-west-2", "--endpoint-url", "https://x"], env
    ).options
    assert (from_env.region, from_env.endpoint_url) == ("eu-central-1", "http://127.0.0.1:5000")
    assert (given.region, given.endpoint_url) == ("us-west-2", "https://x")


def test_console_input_has_the_documented_execution_input_fields() -> None:
    name, document = console_execution_input("duffbeer-input-orders", "orders.csv")
    assert list(document) == [
        "bucket",
        "key",
        "etag",
        "version_id",
        "size",
        "event_time",
        "batch_id",
        "sequencer",
        "rerun_at",
    ]
    assert document["bucket"] == "duffbeer-input-orders"
    assert document["batch_id"] == "orders-fc7a95199035"
    assert name.startswith("orders-fc7a95199035-manual-")
    json.dumps(document)


def test_script_runs_from_any_directory_with_its_own_imports(tmp_path: Path) -> None:
    # Given the script invoked by path from another directory / When asked for its help
    result = subprocess.run(
        [sys.executable, str(PROJECT / "deploy" / "create_workflow.py"), "deploy", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"AWS_REGION": "us-east-1", "SAGEMAKER_SUPPRESS_V2_WARNING": "1", "PATH": "/usr/bin"},
        timeout=120,
        check=False,
    )
    # Then it imports everything it deploys with (the installed package resolves; nothing
    # shadows the `packaging` distribution)
    assert result.returncode == 0, result.stderr
    assert "--stack-name" in result.stdout


def test_a_hand_rerun_repeats_the_upload_order_and_is_newer_than_its_automatic_run() -> None:
    # Given an uploaded object's HEAD and its automatic run's ordering fields
    head = {"ETag": '"9b2cf535f27731c974343645a3985328"', "ContentLength": 312, "VersionId": "v1"}
    order = UploadOrder("2026-11-28T08:00:01.250Z", "0055AED6DCD90281E5", "execution x")
    now = datetime(2026, 11, 28, 9, 30, 5, 7000, tzinfo=UTC)
    # When a re-run is prepared twice at the same instant
    first = execution_request("duffbeer-input-orders", "orders.csv", head, order, now)
    second = execution_request("duffbeer-input-orders", "orders.csv", head, order, now)
    # Then the input is the documented shape: the upload's order, re-run now
    assert first.document == {
        "bucket": "duffbeer-input-orders",
        "key": "orders.csv",
        "etag": "9b2cf535f27731c974343645a3985328",
        "version_id": "v1",
        "size": 312,
        "event_time": "2026-11-28T08:00:01.250Z",
        "batch_id": "orders-fc7a95199035",
        "sequencer": "0055AED6DCD90281E5",
        "rerun_at": "2026-11-28T09:30:05.007Z",
    }
    # And each name is new and readable, never the automatic run's
    automatic = naming.execution_name_for("orders-fc7a95199035", "v1")
    assert first.name.startswith("orders-fc7a95199035-manual-20261128T093005007Z-")
    assert len({first.name, second.name, automatic}) == 3
    # And the re-run orders after the automatic run, and before a later upload of the key
    runs = {
        "automatic": manifest.run_order(automatic, order.event_time, order.sequencer),
        "rerun": manifest.run_order(
            first.name, order.event_time, order.sequencer, first.document["rerun_at"]
        ),
        "later upload": manifest.run_order("z", "2026-11-28T08:00:02.000Z", "0055AED6DCD90281F0"),
    }
    assert sorted(runs, key=runs.__getitem__) == ["automatic", "rerun", "later upload"]


def test_a_manual_name_keeps_its_manual_part_when_the_batch_id_is_long() -> None:
    batch_id = naming.batch_id_for("b", "x" * 60 + ".csv")
    name = naming.manual_execution_name(batch_id, datetime(2026, 1, 2, tzinfo=UTC), "beef")
    assert len(name) == naming.EXECUTION_NAME_MAX
    assert name.endswith("-manual-20260102T000000000Z-beef")
    assert name[0].isalnum()


def test_a_named_profile_gives_the_credentials_and_the_region_unless_one_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an AWS config file with a profile of its own region and keys
    config = tmp_path / "config"
    config.write_text(
        "[profile qa]\nregion = eu-west-3\n"
        "aws_access_key_id = AKIAQAPROFILE0000001\naws_secret_access_key = qa-secret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    # (boto3 prefers a region in the environment to the profile's, as the AWS CLI does)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    # When the command line names it
    from_profile = CliArgs.from_args(["deploy", "--profile", "qa"], {}).options
    given = CliArgs.from_args(["diff", "--profile", "qa", "--region", "us-west-2"], {}).options
    # Then the region is the profile's unless given, and every client signs with its keys
    assert (from_profile.profile, from_profile.region, given.region) == (
        "qa",
        "eu-west-3",
        "us-west-2",
    )
    s3 = Clients(from_profile.region, None, from_profile.profile).s3
    assert s3.meta.region_name == "eu-west-3"
    assert s3._request_signer._credentials.access_key == "AKIAQAPROFILE0000001"


def test_an_unknown_profile_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(SystemExit) as raised:
        CliArgs.from_args(["destroy", "--profile", "nope"], {})
    assert raised.value.code == 2
    assert "--profile nope: The config profile (nope) could not be found" in capsys.readouterr().err
