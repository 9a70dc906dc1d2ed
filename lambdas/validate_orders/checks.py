"""File-level checks of an input CSV on S3, reading only its metadata and a bounded prefix,
then the run's own copy of exactly the upload the S3 event announced."""

from __future__ import annotations

import codecs
import csv
import io
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from duffbeer import contract, utc
from duffbeer.errors import (
    DelimiterError,
    EmptyFileError,
    EncodingError,
    FileTooLargeError,
    InputChangedError,
    InvalidParameterError,
    MissingColumnsError,
    NotCsvError,
)
from duffbeer.steps import InputEvent, Payload
from duffbeer.telemetry import Measure

_BOM = codecs.BOM_UTF8
# Delimiters people export by mistake (spreadsheet locales, TSV, pipes).
_OTHER_DELIMITERS: tuple[str, ...] = (";", "\t", "|")


class ValidateEvent(InputEvent):
    """The upload the S3 event announced: its version and ETag pin the bytes to check."""

    etag: str | None = None
    event_time: str


class ValidationResult(Payload):
    """What the checks found; the state machine keeps it under $.validation."""

    bucket: str
    key: str
    version_id: str | None
    etag: str
    size: int
    encoding: str
    bom: bool
    columns: list[str]
    extra_columns: list[str]
    missing_optional_columns: list[str]
    sampled_bytes: int
    sampled_rows: int
    ingest_date: str
    # The run's copy of the upload (processed bucket) and the version it came from ("" for
    # an unversioned bucket): the Glue job reads the copy, so a later overwrite of the key
    # cannot change what this run publishes.
    staged_input: str = ""
    source_version_id: str = ""

    def measures(self) -> list[Measure]:
        return [Measure("ValidFiles", 1), Measure("InputBytes", self.size, MetricUnit.Bytes)]


def ingest_date_of(event_time: str) -> str:
    """The UTC date of the S3 event time (the batch's ingest date, per the contract)."""
    try:
        return utc.parse(event_time).date().isoformat()
    except (TypeError, ValueError) as e:
        raise InvalidParameterError(f"event_time {event_time!r} is not an ISO-8601 time") from e


def _unquoted(etag: str | None) -> str:
    return (etag or "").strip('"')


def _changed(bucket: str, key: str, announced: str, found: str) -> InputChangedError:
    return InputChangedError(
        f"the object is not the upload its S3 event announced (ETag {found or 'unknown'}, "
        f"expected {announced}): it was overwritten after the event; the newer upload has a "
        "run of its own",
        bucket=bucket,
        key=key,
    )


def _object_params(
    bucket: str, key: str, version_id: str | None, etag: str | None
) -> dict[str, str]:
    params = {"Bucket": bucket, "Key": key}
    if version_id:
        params["VersionId"] = version_id
    if etag:
        # Also guards the window between the HEAD and a read (an unversioned bucket).
        params["IfMatch"] = f'"{_unquoted(etag)}"'
    return params


def _precondition_failed(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in {"PreconditionFailed", "412"}


def _head(
    client: Any, bucket: str, key: str, version_id: str | None, etag: str | None
) -> dict[str, Any]:
    try:
        response: dict[str, Any] = client.head_object(
            **_object_params(bucket, key, version_id, etag)
        )
    except ClientError as e:
        if etag and _precondition_failed(e):
            raise _changed(bucket, key, _unquoted(etag), "") from e
        raise
    if etag and _unquoted(response.get("ETag")) != _unquoted(etag):
        raise _changed(bucket, key, _unquoted(etag), _unquoted(response.get("ETag")))
    return response


def _read_prefix(client: Any, params: dict[str, str], length: int) -> bytes:
    bucket, key, etag = params["Bucket"], params["Key"], params.get("IfMatch")
    params = {**params, "Range": f"bytes=0-{length - 1}"}
    try:
        body = client.get_object(**params)["Body"]
    except ClientError as e:
        if etag and _precondition_failed(e):
            raise _changed(bucket, key, _unquoted(etag), "") from e
        raise
    try:
        data: bytes = body.read(length)
    finally:
        body.close()
    return data


def _decode(data: bytes, *, offset: int, complete: bool, bucket: str, key: str) -> str:
    """Strict UTF-8; an incomplete sample may end inside a multi-byte character."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    try:
        return decoder.decode(data, final=complete)
    except UnicodeDecodeError as e:
        raise EncodingError(
            f"not UTF-8: invalid byte 0x{data[e.start]:02x} at offset {offset + e.start}",
            bucket=bucket,
            key=key,
        ) from e


def _header_and_rows(text: str, *, complete: bool) -> tuple[list[str], int]:
    """The header fields and the number of complete, non-blank data rows in the sample."""
    lines = text.splitlines(keepends=True)
    if not complete and lines and not lines[-1].endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample cut this line short
    rows = list(csv.reader(io.StringIO("".join(lines)), strict=False))
    if not rows:
        return [], 0
    data_rows = sum(1 for row in rows[1:] if any(field.strip() for field in row))
    return rows[0], data_rows


def validate_object(
    *,
    bucket: str,
    key: str,
    version_id: str | None,
    event_time: str,
    max_file_bytes: int,
    sample_bytes: int,
    client: Any,
    etag: str | None = None,
) -> ValidationResult:
    """Run the contract's file-level checks on the upload the event announced (`version_id`,
    `etag`); raise the InvalidFileError subclass naming the first failed check. Reads at most
    `sample_bytes` of the object."""
    if not key.lower().endswith(contract.CSV_EXTENSION):
        raise NotCsvError("the key does not end in .csv", bucket=bucket, key=key)
    ingest_date = ingest_date_of(event_time)
    head = _head(client, bucket, key, version_id, etag)
    size = int(head["ContentLength"])
    if size == 0:
        raise EmptyFileError("the object is empty (0 bytes)", bucket=bucket, key=key)
    if size > max_file_bytes:
        raise FileTooLargeError(
            f"{size} bytes is larger than the maximum of {max_file_bytes} bytes",
            bucket=bucket,
            key=key,
        )

    length = min(size, sample_bytes)
    data = _read_prefix(client, _object_params(bucket, key, version_id, etag), length)
    complete = len(data) >= size
    bom = data.startswith(_BOM)
    skip = len(_BOM) if bom else 0
    text = _decode(data[skip:], offset=skip, complete=complete, bucket=bucket, key=key)
    if not complete and "\n" not in text and "\r" not in text:
        raise DelimiterError(
            f"no line break in the first {len(data)} bytes: not a CSV file with a header row",
            bucket=bucket,
            key=key,
        )

    header, data_rows = _header_and_rows(text, complete=complete)
    if not any(name.strip() for name in header):
        raise EmptyFileError("the first line (header) is blank", bucket=bucket, key=key)
    columns = [contract.normalise_header(name) for name in header]
    missing = [name for name in contract.REQUIRED_COLUMNS if name not in columns]
    if missing:
        if len(header) == 1:
            used = [d for d in _OTHER_DELIMITERS if d in header[0]]
            if used:
                raise DelimiterError(
                    f"the header is delimited by {used[0]!r}, not {contract.CSV_DELIMITER!r}",
                    bucket=bucket,
                    key=key,
                )
        raise MissingColumnsError(
            f"required columns missing from the header: {', '.join(missing)}",
            bucket=bucket,
            key=key,
        )
    if data_rows == 0 and complete:
        raise EmptyFileError("the file holds only a header row", bucket=bucket, key=key)

    return ValidationResult(
        bucket=bucket,
        key=key,
        version_id=head.get("VersionId", version_id),
        etag=str(head.get("ETag", "")).strip('"'),
        size=size,
        encoding="utf-8",
        bom=bom,
        columns=columns,
        extra_columns=[name for name in columns if name not in contract.INPUT_COLUMN_NAMES],
        missing_optional_columns=[n for n in contract.OPTIONAL_COLUMNS if n not in columns],
        sampled_bytes=len(data),
        sampled_rows=data_rows,
        ingest_date=ingest_date,
    )


def stage_input(
    result: ValidationResult, *, client: Any, processed_bucket: str, target_key: str
) -> ValidationResult:
    """Copy exactly the validated upload to the run's own key in the processed bucket: a
    server-side copy of its version, refused by S3 if its ETag changed (CopySourceIfMatch).
    The source is checked again after the copy, so that a store which ignores the copy
    condition, or an unversioned bucket overwritten during the copy, still cannot give the
    run other bytes than the ones validated."""
    source: dict[str, str] = {"Bucket": result.bucket, "Key": result.key}
    if result.version_id:
        source["VersionId"] = result.version_id
    try:
        client.copy_object(
            Bucket=processed_bucket,
            Key=target_key,
            CopySource=source,
            CopySourceIfMatch=f'"{result.etag}"',
            MetadataDirective="COPY",
        )
    except ClientError as e:
        if _precondition_failed(e):
            raise _changed(result.bucket, result.key, result.etag, "") from e
        raise
    try:
        _head(client, result.bucket, result.key, result.version_id, result.etag)
    except InputChangedError:
        client.delete_object(Bucket=processed_bucket, Key=target_key)
        raise
    return result.model_copy(
        update={"staged_input": target_key, "source_version_id": result.version_id or ""}
    )
