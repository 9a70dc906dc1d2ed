"""validate_orders against moto: each file-level failure raises the error that names it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from duffbeer import aws
from duffbeer.errors import (
    DelimiterError,
    EmptyFileError,
    EncodingError,
    FileTooLargeError,
    InputChangedError,
    InvalidFileError,
    MissingColumnsError,
    NotCsvError,
)
from lambdas.validate_orders import handler as validate_handler
from lambdas.validate_orders.checks import stage_input, validate_object
from tests.events.invocation import LambdaContextStub

pytestmark = pytest.mark.functional

BUCKET = "duffbeer-input-orders"
PROCESSED = "duffbeer-processed-orders"
EVENT_TIME = "2026-11-28T23:59:59.999Z"
HEADER = (
    "client_id,client_name,order_id,product_id,product_description,product_price,"
    "product_ccf,product_volume,point_of_sale_channel,status"
)
ROW = "1001,Moe's Tavern,5678,102,Duff Classic,2.50,6,0.33,Retail,created"
ALL_COLUMNS = [
    "client_id",
    "client_name",
    "order_id",
    "product_id",
    "product_description",
    "product_price",
    "product_ccf",
    "product_volume",
    "point_of_sale_channel",
    "status",
]


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.create_bucket(Bucket=PROCESSED)
        yield client


@pytest.fixture
def fresh_handler_state() -> Iterator[None]:
    """Handlers cache their config and duffbeer.aws caches clients built inside mock_aws:
    clear both around a handler test so that no other test inherits them."""
    validate_handler.config.cache_clear()
    aws.client.cache_clear()
    yield
    validate_handler.logger.clear_state()
    validate_handler.config.cache_clear()
    aws.client.cache_clear()


def _validate(s3: Any, key: str, body: bytes, **overrides: Any) -> Any:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    params: dict[str, Any] = {
        "bucket": BUCKET,
        "key": key,
        "version_id": None,
        "event_time": EVENT_TIME,
        "max_file_bytes": 10_000_000,
        "sample_bytes": 64 * 1024,
        "client": s3,
    }
    params.update(overrides)
    return validate_object(**params)


def test_valid_file_gives_a_structured_result(s3: Any) -> None:
    # Given the challenge's sample shape, CRLF line ends and a quoted name with a comma
    quoted = '1002,"Kwik-E-Mart, Springfield",5679,103,Duff Lite,2.00,12,0.5,B2B,delivered'
    body = f"{HEADER}\r\n{ROW}\r\n{quoted}\r\n"

    # When it is validated
    result = _validate(s3, "incoming/orders.csv", body.encode())

    # Then every field of the result describes the file
    assert result.as_dict() == {
        "bucket": BUCKET,
        "key": "incoming/orders.csv",
        "version_id": None,
        "etag": s3.head_object(Bucket=BUCKET, Key="incoming/orders.csv")["ETag"].strip('"'),
        "size": len(body.encode()),
        "encoding": "utf-8",
        "bom": False,
        "columns": ALL_COLUMNS,
        "extra_columns": [],
        "missing_optional_columns": ["order_date"],
        "sampled_bytes": len(body.encode()),
        "sampled_rows": 2,
        "ingest_date": "2026-11-28",
        "staged_input": "",
        "source_version_id": "",
    }


def test_bom_mixed_case_header_and_extra_columns_are_accepted(s3: Any) -> None:
    # Given a BOM, shuffled and padded upper-case headers, order_date and an extra column
    header = (
        " STATUS ,Client_Id,client_name,order_id,product_id,product_description,"
        "product_price,product_ccf,product_volume,point_of_sale_channel,order_date,notes"
    )
    row = "created,1001,Moe's,5678,102,Duff,2.50,6,0.33,Retail,2026-11-27,call first"
    body = "\ufeff".encode() + f"{header}\n{row}\n".encode()

    # When it is validated
    result = _validate(s3, "incoming/ORDERS.CSV", body)

    # Then the BOM is reported and the extra column listed
    assert (result.bom, result.extra_columns, result.missing_optional_columns) == (
        True,
        ["notes"],
        [],
    )
    assert result.columns[:2] == ["status", "client_id"]


@pytest.mark.parametrize(
    ("key", "body", "error", "message_part"),
    [
        ("incoming/orders.xlsx", b"PK\x03\x04", NotCsvError, "does not end in .csv"),
        ("incoming/empty.csv", b"", EmptyFileError, "0 bytes"),
        ("incoming/header-only.csv", f"{HEADER}\n".encode(), EmptyFileError, "only a header"),
        ("incoming/blank-rows.csv", f"{HEADER}\n\n ,\n".encode(), EmptyFileError, "only a header"),
        (
            "incoming/latin1.csv",
            f"{HEADER}\n1001,Caf\xe9 Moe,5678,102,Duff,2.50,6,0.33,Retail,created\n".encode(
                "latin-1"
            ),
            EncodingError,
            "invalid byte 0xe9",
        ),
        (
            "incoming/utf16.csv",
            f"{HEADER}\n{ROW}\n".encode("utf-16"),
            EncodingError,
            "not UTF-8",
        ),
        (
            "incoming/semicolons.csv",
            f"{HEADER.replace(',', ';')}\n{ROW.replace(',', ';')}\n".encode(),
            DelimiterError,
            "delimited by ';'",
        ),
        (
            "incoming/tabs.csv",
            f"{HEADER.replace(',', chr(9))}\n{ROW.replace(',', chr(9))}\n".encode(),
            DelimiterError,
            "delimited by '\\t'",
        ),
        (
            "incoming/no-status.csv",
            f"{HEADER.rsplit(',', 1)[0]}\n{ROW.rsplit(',', 1)[0]}\n".encode(),
            MissingColumnsError,
            "missing from the header: status",
        ),
        (
            "incoming/two-missing.csv",
            b"client_id,client_name,order_id,product_id,product_description,product_price,"
            b"product_ccf,product_volume\n1,a,2,3,b,1.00,1,0.5\n",
            MissingColumnsError,
            "point_of_sale_channel, status",
        ),
    ],
)
def test_each_invalid_file_kind_raises_its_named_error(
    s3: Any, key: str, body: bytes, error: type[InvalidFileError], message_part: str
) -> None:
    # Given an invalid file / When it is validated / Then the named error says what and where
    with pytest.raises(error) as raised:
        _validate(s3, key, body)
    assert message_part in str(raised.value)
    assert str(raised.value).startswith(f"s3://{BUCKET}/{key}: ")


def test_file_over_the_limit_is_rejected_without_reading_it(s3: Any) -> None:
    # Given a file larger than the configured maximum
    body = f"{HEADER}\n" + f"{ROW}\n" * 100

    # When it is validated with a small limit
    with pytest.raises(FileTooLargeError) as raised:
        _validate(s3, "incoming/big.csv", body.encode(), max_file_bytes=1000)

    # Then the error gives both sizes
    assert f"{len(body)} bytes is larger than the maximum of 1000 bytes" in str(raised.value)


def test_only_a_bounded_prefix_is_read(s3: Any) -> None:
    # Given a 1 MB file whose only defect (an invalid UTF-8 byte) sits past the sample,
    # and whose sample boundary cuts a two-byte character in half
    rows = f"{ROW.replace('Moe', 'Moé')}\n" * 20_000
    body = f"{HEADER}\n{rows}".encode() + b"\xff\n"
    sample = 4097  # odd on purpose: lands inside a multi-byte character

    # When it is validated with a 4 KiB sample
    result = _validate(s3, "incoming/large.csv", body, sample_bytes=sample)

    # Then only the sample was read: the late defect is the Glue job's to find (row-level)
    assert (result.sampled_bytes, result.size) == (sample, len(body))
    assert 0 < result.sampled_rows < 100


def test_header_without_line_break_in_the_sample_is_rejected(s3: Any) -> None:
    # Given a file whose first 2 KiB hold no line break
    body = b"x" * 5000 + b"\n"

    # When it is validated with a 2 KiB sample / Then it is not a CSV with a header
    with pytest.raises(DelimiterError, match="no line break in the first 2048 bytes"):
        _validate(s3, "incoming/one-line.csv", body, sample_bytes=2048)


def test_versioned_object_is_validated_at_the_event_version(s3: Any) -> None:
    # Given a versioned bucket where a bad version replaced a good one
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    good = s3.put_object(Bucket=BUCKET, Key="incoming/v.csv", Body=f"{HEADER}\n{ROW}\n".encode())
    s3.put_object(Bucket=BUCKET, Key="incoming/v.csv", Body=b"garbage;header\n1;2\n")

    # When the good version's event is validated
    result = validate_object(
        bucket=BUCKET,
        key="incoming/v.csv",
        version_id=good["VersionId"],
        event_time=EVENT_TIME,
        max_file_bytes=10_000,
        sample_bytes=4096,
        client=s3,
    )

    # Then the good version is the one read
    assert (result.version_id, result.columns) == (good["VersionId"], ALL_COLUMNS)


def _versioned(s3: Any) -> None:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})


def test_the_announced_version_is_copied_to_the_run_even_after_an_overwrite(s3: Any) -> None:
    # Given an upload announced by its event, then overwritten before the run validates it
    _versioned(s3)
    announced = f"{HEADER}\n{ROW}\n".encode()
    first = s3.put_object(Bucket=BUCKET, Key="in/o.csv", Body=announced)
    newer = f"{HEADER}\n{ROW.replace('6', '7')}\n".encode()
    s3.put_object(Bucket=BUCKET, Key="in/o.csv", Body=newer)

    # When the run validates and stages the announced version
    result = validate_object(
        bucket=BUCKET,
        key="in/o.csv",
        version_id=first["VersionId"],
        etag=first["ETag"],
        event_time=EVENT_TIME,
        max_file_bytes=10_000,
        sample_bytes=4096,
        client=s3,
    )
    staged = stage_input(
        result, client=s3, processed_bucket=PROCESSED, target_key="runs/b/r/input/source.csv"
    )

    # Then the run's copy holds exactly the announced bytes, and says where they came from
    copy = s3.get_object(Bucket=PROCESSED, Key="runs/b/r/input/source.csv")["Body"].read()
    assert copy == announced
    assert (staged.staged_input, staged.source_version_id) == (
        "runs/b/r/input/source.csv",
        first["VersionId"],
    )


def test_an_overwritten_upload_of_an_unversioned_bucket_fails_clearly(s3: Any) -> None:
    # Given an unversioned bucket whose key was overwritten after the event
    first = s3.put_object(Bucket=BUCKET, Key="in/o.csv", Body=f"{HEADER}\n{ROW}\n".encode())
    s3.put_object(Bucket=BUCKET, Key="in/o.csv", Body=f"{HEADER}\n{ROW}\n{ROW}\n".encode())

    # When the run validates the announced upload / Then it refuses the newer bytes
    with pytest.raises(InputChangedError, match="overwritten after the event"):
        validate_object(
            bucket=BUCKET,
            key="in/o.csv",
            version_id=None,
            etag=first["ETag"],
            event_time=EVENT_TIME,
            max_file_bytes=10_000,
            sample_bytes=4096,
            client=s3,
        )


def test_an_overwrite_between_the_checks_and_the_copy_fails_clearly(s3: Any) -> None:
    # Given an unversioned upload validated, then overwritten before the copy
    first = s3.put_object(Bucket=BUCKET, Key="in/o.csv", Body=f"{HEADER}\n{ROW}\n".encode())
    result = validate_object(
        bucket=BUCKET,
        key="in/o.csv",
        version_id=None,
        etag=first["ETag"],
        event_time=EVENT_TIME,
        max_file_bytes=10_000,
        sample_bytes=4096,
        client=s3,
    )
    s3.put_object(Bucket=BUCKET, Key="in/o.csv", Body=b"other bytes")

    # When it is staged / Then the copy is refused and nothing is written for the run
    with pytest.raises(InputChangedError):
        stage_input(result, client=s3, processed_bucket=PROCESSED, target_key="runs/b/r/in.csv")
    assert "Contents" not in s3.list_objects_v2(Bucket=PROCESSED, Prefix="runs/")


def test_handler_raises_the_named_error_for_the_state_machine(
    s3: Any, monkeypatch: pytest.MonkeyPatch, fresh_handler_state: None
) -> None:
    # Given the function's environment and a semicolon-delimited file
    monkeypatch.setenv("MAX_FILE_BYTES", "1048576")
    monkeypatch.setenv("PROCESSED_BUCKET", PROCESSED)
    s3.put_object(Bucket=BUCKET, Key="in/semi.csv", Body=b"a;b;c\n1;2;3\n")
    event = {
        "batch_id": "semi-0123456789ab",
        "run_id": "semi-0123456789ab-0011223344556677",
        "bucket": BUCKET,
        "key": "in/semi.csv",
        "version_id": None,
        "event_time": EVENT_TIME,
    }

    # When the Validate step invokes the handler
    # Then the exception class is what Lambda reports as errorType (and Catch matches)
    with pytest.raises(DelimiterError):
        validate_handler.handler(event, LambdaContextStub())
