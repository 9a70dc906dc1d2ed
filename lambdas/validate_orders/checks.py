"""File-level checks of an input CSV on S3, reading only its metadata and a bounded prefix."""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from duffbeer import contract
from duffbeer.errors import (
    DelimiterError,
    EmptyFileError,
    EncodingError,
    FileTooLargeError,
    InvalidParameterError,
    MissingColumnsError,
    NotCsvError,
)

_BOM = codecs.BOM_UTF8
# Delimiters people export by mistake (spreadsheet locales, TSV, pipes).
_OTHER_DELIMITERS: tuple[str, ...] = (";", "\t", "|")


@dataclass(frozen=True)
class ValidationResult:
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ingest_date_of(event_time: str) -> str:
    """The UTC date of the S3 event time (the batch's ingest date, per the contract)."""
    try:
        moment = datetime.fromisoformat(event_time)
    except (TypeError, ValueError) as e:
        raise InvalidParameterError(f"event_time {event_time!r} is not an ISO-8601 time") from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).date().isoformat()


def _head(client: Any, bucket: str, key: str, version_id: str | None) -> dict[str, Any]:
    params = {"Bucket": bucket, "Key": key}
    if version_id:
        params["VersionId"] = version_id
    response: dict[str, Any] = client.head_object(**params)
    return response


def _read_prefix(client: Any, bucket: str, key: str, version_id: str | None, length: int) -> bytes:
    params = {"Bucket": bucket, "Key": key, "Range": f"bytes=0-{length - 1}"}
    if version_id:
        params["VersionId"] = version_id
    body = client.get_object(**params)["Body"]
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
) -> ValidationResult:
    """Run the contract's file-level checks; raise the InvalidFileError subclass naming the
    first failed check. Reads at most `sample_bytes` of the object."""
    if not key.lower().endswith(contract.CSV_EXTENSION):
        raise NotCsvError("the key does not end in .csv", bucket=bucket, key=key)
    ingest_date = ingest_date_of(event_time)
    head = _head(client, bucket, key, version_id)
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
    data = _read_prefix(client, bucket, key, version_id, length)
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
