"""Deploy machinery: IAM-propagation retries, AWS error wrapping, canonical documents."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from deploy.core import aws_errors, canonical, retry_on
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
        {"InvalidParameterValueException"}, call, message="cannot be assumed", delay=0
    )
    assert (result, call.calls) == ("created", 3)


def test_a_genuinely_invalid_request_fails_at_once() -> None:
    call = Flaky(5, _error("InvalidParameterValueException", "Unsupported runtime"))
    with pytest.raises(ClientError, match="Unsupported runtime"):
        retry_on({"InvalidParameterValueException"}, call, message="cannot be assumed", delay=0)
    assert call.calls == 1


def test_retries_are_bounded() -> None:
    call = Flaky(10, NOT_ASSUMABLE)
    with pytest.raises(ClientError):
        retry_on({"InvalidParameterValueException"}, call, attempts=3, delay=0)
    assert call.calls == 3


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
