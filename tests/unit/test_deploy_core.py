"""Deploy machinery: IAM-propagation retries, AWS error wrapping, canonical documents."""

from __future__ import annotations

import io

import pytest
from botocore.exceptions import ClientError

from deploy import core
from deploy.core import Progress, aws_errors, canonical, retry_on
from duffbeer.errors import DeploymentError


def _error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "CreateFunction")


class Flaky:
    """Fails with the given error a number of times, then answers."""

    def __init__(self, failures: int, error: ClientError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "created"


NOT_ASSUMABLE = _error(
    "InvalidParameterValueException",
    "The role defined for the function cannot be assumed by Lambda.",
)


def test_a_role_not_yet_assumable_is_retried_until_it_is() -> None:
    call = Flaky(2, NOT_ASSUMABLE)
    result = retry_on(
        {"InvalidParameterValueException"},
        call,
        waiting_for="the role",
        message="cannot be assumed",
        delay=0,
    )
    assert (result, call.calls) == ("created", 3)


def test_a_genuinely_invalid_request_fails_at_once() -> None:
    call = Flaky(5, _error("InvalidParameterValueException", "Unsupported runtime"))
    with pytest.raises(ClientError, match="Unsupported runtime"):
        retry_on(
            {"InvalidParameterValueException"},
            call,
            waiting_for="the role",
            message="cannot be assumed",
            delay=0,
        )
    assert call.calls == 1


def test_retries_are_bounded() -> None:
    call = Flaky(10, NOT_ASSUMABLE)
    with pytest.raises(ClientError):
        retry_on(
            {"InvalidParameterValueException"}, call, waiting_for="the role", attempts=3, delay=0
        )
    assert call.calls == 3


def test_a_wait_says_what_it_waits_for_after_5_s_then_every_10_s() -> None:
    # Given a wait whose turns come at these seconds
    turns = iter([100.0, 104.0, 106.0, 112.0, 117.0, 126.0])
    out = io.StringIO()
    what = "the role of duffbeer-start-etl to be usable by Lambda"
    progress = Progress(what, out, lambda: next(turns))
    for _ in range(5):
        progress.tick()
    # Then it spoke at 6 s (the first turn past 5 s) and at 17 s (10 s later), naming it
    assert out.getvalue().splitlines() == [
        "  waiting for the role of duffbeer-start-etl to be usable by Lambda (6 s so far)",
        "  waiting for the role of duffbeer-start-etl to be usable by Lambda (17 s so far)",
    ]


def test_a_retried_call_says_what_it_waits_for(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "PROGRESS_AFTER_S", 0.0)
    call = Flaky(1, NOT_ASSUMABLE)
    retry_on({"InvalidParameterValueException"}, call, waiting_for="the role of f", delay=0)
    assert capsys.readouterr().err.startswith("  waiting for the role of f (0 s so far)")


def test_aws_errors_name_the_resource_and_the_aws_error() -> None:
    with pytest.raises(DeploymentError) as raised, aws_errors("Lambda function duffbeer-start-etl"):
        raise _error(
            "AccessDeniedException", "User is not authorized to perform lambda:CreateFunction"
        )
    assert str(raised.value) == (
        "Lambda function duffbeer-start-etl: AccessDeniedException: "
        "User is not authorized to perform lambda:CreateFunction"
    )
    assert isinstance(raised.value.__cause__, ClientError)


def test_documents_compare_equal_whatever_their_serialisation() -> None:
    as_returned = '{"Statement": [{"Effect": "Allow"}], "Version": "2012-10-17"}'
    as_built = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}
    assert canonical(as_returned) == canonical(as_built)
    assert canonical("arn:aws:iam::1:role/x") == '"arn:aws:iam::1:role/x"'
