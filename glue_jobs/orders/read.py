"""Reading an orders CSV: file-level checks on the header, then one explicit-schema parse."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from duffbeer.contract import (
    CSV_DELIMITER,
    CSV_QUOTE,
    INPUT_COLUMN_NAMES,
    REQUIRED_COLUMNS,
    UTF8_BOM,
    normalise_header,
)
from duffbeer.errors import (
    DelimiterError,
    EmptyFileError,
    EncodingError,
    FileTooLargeError,
    InvalidFileError,
    MissingColumnsError,
)
from glue_jobs.orders.storage import InputFile

# Bytes read on the driver to find and check the header (and sniff the encoding).
HEAD_BYTES = 64 * 1024
OTHER_DELIMITERS: tuple[str, ...] = (";", "\t", "|")
# Characters Spark (Hadoop's glob) gives a meaning in a path it reads.
_GLOB_CHARACTERS = frozenset("\\*?[]{}")

# Columns added to every parsed row: where it came from and its position in read order.
CORRUPT_COLUMN = "_corrupt_record"
# The file is kept as a 64-bit hash of its path: rows only need to be grouped by file (to
# number them within it), and a long is far cheaper to keep and group on than the path
# repeated in every row.
FILE_COLUMN = "_source_file_id"
BLOCK_COLUMN = "_source_block"
ROW_ID_COLUMN = "_row_id"


@dataclass(frozen=True)
class HeaderLayout:
    """The header of an input file mapped onto the contract's columns."""

    file_columns: tuple[str, ...]  # one Spark column name per field, in file order
    extra_columns: tuple[str, ...]  # header names that are not in the contract (ignored)
    has_order_date: bool


def _extra_name(position: int) -> str:
    return f"_extra_{position}"


def parse_header(head: bytes, *, file_size: int, where: str) -> HeaderLayout:
    """Check the first bytes of a file and map its header onto the contract.

    Raises the duffbeer.errors class naming the file-level fault: empty, header only,
    not UTF-8, another delimiter, a missing required column (or a duplicated one).
    """
    if file_size == 0 or not head.strip():
        raise EmptyFileError(f"{where} is empty")
    try:
        # Incremental decoding tolerates a character cut in two at the end of the sample.
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) >= file_size)
    except UnicodeDecodeError as e:
        raise EncodingError(f"{where} is not UTF-8 (byte {e.start}: {e.reason})") from e
    text = text.removeprefix(UTF8_BOM)
    line, newline, rest = text.partition("\n")
    line = line.rstrip("\r")
    if not newline and len(head) < file_size:
        raise InvalidFileError(f"{where}: no end of header line in the first {HEAD_BYTES} bytes")
    if not rest.strip():
        raise EmptyFileError(f"{where} holds only a header row")
    names = next(csv.reader([line], delimiter=CSV_DELIMITER, quotechar=CSV_QUOTE), [])
    normalised = [normalise_header(n) for n in names]
    missing = [c for c in REQUIRED_COLUMNS if c not in normalised]
    if missing:
        found = [d for d in OTHER_DELIMITERS if d in line]
        if found and CSV_DELIMITER not in line:
            raise DelimiterError(
                f"{where}: the header is delimited by {found[0]!r}, not {CSV_DELIMITER!r}"
            )
        raise MissingColumnsError(f"{where}: required columns {missing} are missing")
    repeated = sorted(
        {n for n in normalised if n in INPUT_COLUMN_NAMES and normalised.count(n) > 1}
    )
    if repeated:
        raise InvalidFileError(f"{where}: columns {repeated} appear more than once in the header")
    file_columns = tuple(
        name if name in INPUT_COLUMN_NAMES else _extra_name(i) for i, name in enumerate(normalised)
    )
    extras = tuple(
        original.strip()
        for original, name in zip(names, normalised, strict=True)
        if name not in INPUT_COLUMN_NAMES
    )
    return HeaderLayout(
        file_columns=file_columns,
        extra_columns=extras,
        has_order_date="order_date" in normalised,
    )


def check_size(files: Sequence[InputFile], *, max_bytes: int, where: str) -> int:
    """Total input size; an absent input counts as empty, one over the limit is refused."""
    if not files:
        raise EmptyFileError(f"{where}: no input file found")
    total = sum(f.size for f in files)
    if total > max_bytes:
        raise FileTooLargeError(f"{where} is {total} bytes, more than the limit of {max_bytes}")
    return total


def refuse_hidden_names(files: Sequence[InputFile], *, where: str) -> None:
    """Spark skips a file whose name starts with `_` or `.` even when it is named
    explicitly (it takes it for a marker or a temporary): refuse it rather than read
    nothing and call the file empty."""
    hidden = [f.path for f in files if f.path.rsplit("/", 1)[-1].startswith(("_", "."))]
    if hidden:
        raise InvalidFileError(
            f"{where}: Spark does not read files whose names start with '_' or '.': {hidden[0]}"
        )


def exact_path(path: str) -> str:
    """The path as a pattern that matches only itself: Spark expands glob characters
    (`*?[]{}` and backslash) in the paths it reads, which could read other objects."""
    return "".join(f"\\{c}" if c in _GLOB_CHARACTERS else c for c in path)


def line_separator(head: bytes) -> str:
    """The file's line separator, as its header line ends (CRLF or LF)."""
    line, newline, _ = head.partition(b"\n")
    return "\r\n" if newline and line.endswith(b"\r") else "\n"


def csv_schema(layout: HeaderLayout) -> StructType:
    """Every field as text (rules are applied afterwards), plus the corrupt-record column."""
    fields = [StructField(name, StringType(), True) for name in layout.file_columns]
    return StructType([*fields, StructField(CORRUPT_COLUMN, StringType(), True)])


def read_orders(
    spark: SparkSession,
    paths: Sequence[str],
    layout: HeaderLayout,
    *,
    multi_line: bool = False,
    line_sep: str = "\n",
) -> DataFrame:
    """Parse the CSV once with an explicit schema: the contract's columns as raw text, a
    corrupt-record column for rows with the wrong field count, and their read position.

    By default records are lines, so a large file splits across cores; a quoted field
    spanning lines then shows up as malformed rows that `quoted_line_break` recognises.
    With `multi_line` each file is parsed whole by one task, records as RFC 4180 reads
    them (a quoted line break is kept as it is in the file, `line_sep` being the file's).
    """
    reader = (
        spark.read.option("header", "true")
        .option("enforceSchema", "true")
        .option("sep", CSV_DELIMITER)
        .option("quote", CSV_QUOTE)
        .option("escape", CSV_QUOTE)
        .option("encoding", "UTF-8")
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_COLUMN)
        .option("multiLine", str(multi_line).lower())
    )
    if multi_line:
        reader = reader.option("lineSep", line_sep)
    raw = reader.schema(csv_schema(layout)).csv([exact_path(p) for p in paths])
    if multi_line:
        # The line reader skips blank lines (only spaces or control characters); the
        # multi-line parser keeps them as one-field records. Dropped here, before the
        # rows are numbered.
        corrupt = F.col(CORRUPT_COLUMN)
        raw = raw.where(corrupt.isNull() | ~corrupt.rlike("^[\\x00-\\x20]*$"))
    present: list[Column] = [
        F.col(name) if name in layout.file_columns else F.lit(None).cast("string").alias(name)
        for name in INPUT_COLUMN_NAMES
    ]
    return raw.select(
        *present,
        F.col(CORRUPT_COLUMN),
        F.xxhash64(F.col("_metadata.file_path")).alias(FILE_COLUMN),
        F.col("_metadata.file_block_start").alias(BLOCK_COLUMN),
        F.monotonically_increasing_id().alias(ROW_ID_COLUMN),
    )


# A complete field: quoted (doubled quotes inside) or unquoted (a quote only after its
# first character, which Spark's parser reads as text).
_FIELD = '(?:"(?:[^"]|"")*"|(?:[^",][^,]*)?)'
# A line that ends inside a quoted field, or one that starts inside a quoted field and
# closes it: the two ends of a record whose quoted field holds a line break, as the line
# reader cuts it.
_OPENS_QUOTE = f'^(?:{_FIELD},)*"(?:[^"]|"")*$'
_CLOSES_QUOTE = f'^(?:[^"]|"")*"(?:,{_FIELD})*$'


def quoted_line_break(corrupt: Column) -> Column:
    """Whether a malformed line (its corrupt-record text) is one end of a quoted field
    cut at a line break. Evaluated for malformed lines only, so it costs nothing per
    good row."""
    return corrupt.isNotNull() & (corrupt.rlike(_OPENS_QUOTE) | corrupt.rlike(_CLOSES_QUOTE))
