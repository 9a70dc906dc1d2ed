"""The data contract's row rules as Spark expressions: typed values, reject reason, detail.

Every rule comes from duffbeer.contract (patterns, channels, statuses, rule order); nothing
here is a Python UDF, so the whole validation runs in the JVM as generated code.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from duffbeer.contract import (
    CANONICAL_CHANNEL,
    COLUMNS_BY_NAME,
    DATE_PATTERN,
    INPUT_COLUMN_NAMES,
    INT_MAX,
    INTEGER_PATTERN,
    LINE_KEY,
    LINE_TOTAL_TYPE,
    LINE_VOLUME_TYPE,
    MAX_LINE_TOTAL,
    MAX_PRICE_ANY_QUANTITY,
    MAX_TEXT_LENGTHS,
    PRICE_PATTERN,
    RULE_ORDER,
    STATUSES,
    VOLUME_PATTERN,
    ColumnKind,
    RejectReason,
)
from glue_jobs.orders.read import CORRUPT_COLUMN, ROW_ID_COLUMN

REASON_COLUMN = "reject_reason"
DETAIL_COLUMN = "reject_detail"
BAD_UTF8_COLUMN = "_bad_utf8"
DUPLICATE_OF_COLUMN = "_first_row_id"
_LINE_KEY_COLUMN = "_line_key"
TYPED_PREFIX = "v_"
# Enough of a broken line to recognise it in the rejects without storing megabytes.
MAX_DETAIL_CHARS = 500
_DECIMAL_PATTERNS = {"product_price": PRICE_PATTERN, "product_volume": VOLUME_PATTERN}
_REPLACEMENT_CHAR = "\ufffd"
# Internal: the column whose rule a row breaks first (or the malformed-row marker) and its text.
_BROKEN_COLUMN = "_broken_column"
_BROKEN_VALUE = "_broken_value"
_MALFORMED = "_row"
_FREE_TEXT = ("client_name", "product_description", "point_of_sale_channel", "status")


def typed(name: str) -> str:
    """Name of the parsed value of an input column."""
    return f"{TYPED_PREFIX}{name}"


def _candidate_name(name: str) -> str:
    return f"_candidate_{name}"


def _channel(text: Column) -> Column:
    lowered = F.lower(text)
    known = list(CANONICAL_CHANNEL.items())
    canonical = F.when(lowered == known[0][0], F.lit(known[0][1]))
    for spelling_lower, spelling in known[1:]:
        canonical = canonical.when(lowered == spelling_lower, F.lit(spelling))
    return canonical.otherwise(text)


def _candidate(name: str, has_order_date: bool, ingest_date: date) -> Column:
    """Step 1: the trimmed text, cast to the column's type when it has the rule's shape."""
    column = COLUMNS_BY_NAME[name]
    text = F.trim(F.col(name))
    if column.kind is ColumnKind.DATE:
        # The pattern fixes the layout; the cast then refuses dates not in the calendar
        # (2026-02-30, month 00) by returning null.
        parsed = F.when(text.rlike(DATE_PATTERN.pattern), text.cast("date"))
        return parsed if has_order_date else F.lit(ingest_date)
    shaped = {
        ColumnKind.INTEGER: (INTEGER_PATTERN.pattern, "bigint"),
        ColumnKind.DECIMAL: (
            _DECIMAL_PATTERNS.get(name, VOLUME_PATTERN).pattern,
            f"decimal({column.precision},{column.scale})",
        ),
    }
    if column.kind in shaped:
        pattern, kind = shaped[column.kind]
        return F.when(text.rlike(pattern), text.cast(kind))
    if name == "status":
        return F.lower(text)
    if name == "point_of_sale_channel":
        return _channel(text)
    return text


def _checked_value(name: str) -> Column:
    """Step 2: the candidate when it satisfies the rule, else null."""
    kind = COLUMNS_BY_NAME[name].kind
    value = F.col(_candidate_name(name))
    if kind is ColumnKind.INTEGER:
        allowed = value.between(1, INT_MAX)
        if name == "product_ccf":
            # The line total must fit its column; the product is computed only for prices
            # high enough to overflow (the OR short-circuits).
            price = F.col(_candidate_name("product_price"))
            allowed = allowed & (
                (price <= MAX_PRICE_ANY_QUANTITY) | (price * value <= MAX_LINE_TOTAL)
            )
        return F.when(allowed, value.cast("int"))
    if kind is ColumnKind.DECIMAL:
        # Prices may be zero (free goods); a volume per unit must be positive.
        return F.when(value >= 0 if name == "product_price" else value > 0, value)
    if kind is ColumnKind.DATE:
        return value
    if name == "status":
        return F.when(value.isin(*STATUSES), value)
    if name in MAX_TEXT_LENGTHS:
        return F.when(F.length(value).between(1, MAX_TEXT_LENGTHS[name]), value)
    return F.when(F.length(value) > 0, value)


def _too_long(broken: Column, value: Column) -> Column:
    """Whether the broken column is bounded text whose trimmed value is over its limit."""
    over = _by_column(
        broken, {n: F.length(F.trim(value)) > limit for n, limit in MAX_TEXT_LENGTHS.items()}
    )
    return F.coalesce(over, F.lit(False))


def _undecodable() -> Column:
    """Whether a free-text field holds U+FFFD, which Java's decoder puts where the bytes
    were not UTF-8 (numeric fields with such bytes break their own rules anyway)."""
    found = F.lit(False)
    for name in _FREE_TEXT:
        found = found | F.coalesce(F.instr(F.col(name), _REPLACEMENT_CHAR) > 0, F.lit(False))
    return found


def _rule_text(name: str) -> str:
    return f"{name} must be {COLUMNS_BY_NAME[name].rule}"


def _by_column(column: Column, values: dict[str, Column]) -> Column:
    """CASE column WHEN name THEN value ... END over the input columns."""
    names = list(values)
    case = F.when(column == names[0], values[names[0]])
    for name in names[1:]:
        case = case.when(column == name, values[name])
    return case


def check_rules(df: DataFrame, *, has_order_date: bool, ingest_date: date) -> DataFrame:
    """Add the typed value of every input column, the first column whose rule the row
    breaks (null for a valid row) with its text, and whether the row had undecodable bytes.

    This is the part worth caching: every rule is evaluated once per row. Its generated
    code is kept small on purpose, as the JVM never JIT-compiles a method over 8 KB.
    """
    candidates = df.select(
        "*",
        *(
            _candidate(name, has_order_date, ingest_date).alias(_candidate_name(name))
            for name in INPUT_COLUMN_NAMES
        ),
    )
    with_values = candidates.select(
        *df.columns,
        *(_checked_value(name).alias(typed(name)) for name in INPUT_COLUMN_NAMES),
        _undecodable().alias(BAD_UTF8_COLUMN),
    )
    first = F.when(F.col(CORRUPT_COLUMN).isNotNull(), F.lit(_MALFORMED))
    for name in RULE_ORDER:
        first = first.when(F.col(typed(name)).isNull(), F.lit(name))
    located = with_values.select("*", first.alias(_BROKEN_COLUMN))
    value = _by_column(F.col(_BROKEN_COLUMN), {name: F.col(name) for name in RULE_ORDER})
    return located.select("*", value.alias(_BROKEN_VALUE))


def add_reasons(checked: DataFrame) -> DataFrame:
    """Turn the first broken rule into the contract's reason code (null for a valid row).

    The readable detail is left to `add_details`, on the rejected rows only: generated
    together with the reason for every row, the code outgrows the JIT limit and the
    per-row cost triples.
    """
    broken = F.col(_BROKEN_COLUMN)
    empty = F.coalesce(F.col(_BROKEN_VALUE), F.lit("")) == ""
    required = broken.isin(*(c.name for c in COLUMNS_BY_NAME.values() if c.required))
    reason = (
        F.when(broken == _MALFORMED, F.lit(RejectReason.MALFORMED_ROW.value))
        .when(required & empty, F.lit(RejectReason.MISSING_FIELD.value))
        .when(_too_long(broken, F.col(_BROKEN_VALUE)), F.lit(RejectReason.FIELD_TOO_LONG.value))
        .otherwise(
            _by_column(
                broken,
                {n: F.lit(COLUMNS_BY_NAME[n].reject_reason.value) for n in RULE_ORDER},
            )
        )
    )
    return checked.select("*", F.when(broken.isNotNull(), reason).alias(REASON_COLUMN))


def add_details(rows: DataFrame) -> DataFrame:
    """What was wrong with each rejected row, in words (null for a valid row); drops the
    internal columns the reasons were derived from."""
    broken = F.col(_BROKEN_COLUMN)
    reason = F.col(REASON_COLUMN)
    key_text = F.format_string(
        f"line key ({', '.join(LINE_KEY)}) = (%d, %d) already appeared in an earlier row",
        *(F.col(typed(k)) for k in LINE_KEY),
    )
    detail = (
        F.when(reason == RejectReason.DUPLICATE_LINE.value, key_text)
        .when(
            broken == _MALFORMED,
            F.concat(
                F.lit("the row does not have the header's number of fields: "),
                F.substring(F.col(CORRUPT_COLUMN), 1, MAX_DETAIL_CHARS),
            ),
        )
        .when(
            reason == RejectReason.MISSING_FIELD.value,
            F.concat(broken, F.lit(" is empty")),
        )
        .when(
            reason == RejectReason.FIELD_TOO_LONG.value,
            F.concat(
                _by_column(
                    broken,
                    {
                        n: F.lit(f"{n} must be at most {limit} characters, got ")
                        for n, limit in MAX_TEXT_LENGTHS.items()
                    },
                ),
                F.length(F.trim(F.col(_BROKEN_VALUE))).cast("string"),
                F.lit(": '"),
                F.substring(F.col(_BROKEN_VALUE), 1, MAX_DETAIL_CHARS),
                F.when(F.length(F.col(_BROKEN_VALUE)) > MAX_DETAIL_CHARS, F.lit("...'")).otherwise(
                    F.lit("'")
                ),
            ),
        )
        .otherwise(
            F.concat(
                _by_column(broken, {n: F.lit(_rule_text(n)) for n in RULE_ORDER}),
                F.lit(", got '"),
                F.substring(F.coalesce(F.col(_BROKEN_VALUE), F.lit("")), 1, MAX_DETAIL_CHARS),
                F.lit("'"),
            )
        )
    )
    return rows.select(
        *(c for c in rows.columns if c not in (_BROKEN_COLUMN, _BROKEN_VALUE)),
        F.when(reason.isNotNull(), detail).alias(DETAIL_COLUMN),
    )


def validate(df: DataFrame, *, has_order_date: bool, ingest_date: date) -> DataFrame:
    """check_rules then add_reasons: typed values and reason code for every row (details
    come after de-duplication, from `add_details`)."""
    return add_reasons(check_rules(df, has_order_date=has_order_date, ingest_date=ingest_date))


def _line_key() -> Column:
    """The line key as one bigint: once the rules pass, both parts are integers in
    [1, INT_MAX] (31 bits each), so first x 2^31 + second is exact and unique. A single long
    key lets Spark aggregate on it and probe the broadcast duplicates as a plain long hash
    table, instead of a two-field row per input row."""
    first, second = (F.col(typed(k)).cast("bigint") for k in LINE_KEY)
    return first * (INT_MAX + 1) + second


def duplicate_keys(checked: DataFrame) -> DataFrame:
    """Line keys that occur more than once among rule-valid rows, with the read position of
    their first occurrence. Only the key and position travel through the shuffle."""
    return (
        checked.where(F.col(REASON_COLUMN).isNull())
        .groupBy(_line_key().alias(_LINE_KEY_COLUMN))
        .agg(F.min(ROW_ID_COLUMN).alias(DUPLICATE_OF_COLUMN), F.count(F.lit(1)).alias("_n"))
        .where(F.col("_n") > 1)
        .drop("_n")
    )


def mark_duplicates(checked: DataFrame, duplicates: DataFrame) -> DataFrame:
    """Reject every later occurrence of a line key as duplicate_line (first one in file order
    is kept; exact repeats included)."""
    # The key table is small (repeated keys only): broadcast it rather than shuffle the rows.
    joined = checked.join(
        F.broadcast(duplicates), on=_line_key() == duplicates[_LINE_KEY_COLUMN], how="left"
    )
    is_later = F.col(REASON_COLUMN).isNull() & (
        F.col(DUPLICATE_OF_COLUMN).isNotNull()
        & (F.col(ROW_ID_COLUMN) != F.col(DUPLICATE_OF_COLUMN))
    )
    return joined.withColumn(
        REASON_COLUMN,
        F.when(is_later, F.lit(RejectReason.DUPLICATE_LINE.value)).otherwise(F.col(REASON_COLUMN)),
    ).drop(_LINE_KEY_COLUMN, DUPLICATE_OF_COLUMN)


def line_total() -> Column:
    """A valid row's price x quantity, exact (the quantity rule keeps it within its type)."""
    return (F.col(typed("product_price")) * F.col(typed("product_ccf"))).cast(LINE_TOTAL_TYPE)


def line_volume() -> Column:
    """A valid row's volume x quantity in litres, exact."""
    return (F.col(typed("product_volume")) * F.col(typed("product_ccf"))).cast(LINE_VOLUME_TYPE)
