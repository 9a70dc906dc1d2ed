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
TYPED_PREFIX = "v_"
# Enough of a broken line to recognise it in the rejects without storing megabytes.
MAX_DETAIL_CHARS = 500
_DECIMAL_PATTERNS = {"product_price": PRICE_PATTERN, "product_volume": VOLUME_PATTERN}
# Java's decoder puts U+FFFD where the bytes were not UTF-8.
_REPLACEMENT_CHAR = "\ufffd"


def typed(name: str) -> str:
    """Name of the parsed value of an input column."""
    return f"{TYPED_PREFIX}{name}"


def _integer(text: Column) -> Column:
    number = F.when(text.rlike(INTEGER_PATTERN.pattern), text.cast("bigint"))
    return F.when(number.between(1, INT_MAX), number.cast("int"))


def _decimal(name: str, text: Column) -> Column:
    column = COLUMNS_BY_NAME[name]
    amount = F.when(
        text.rlike(_DECIMAL_PATTERNS[name].pattern),
        text.cast(f"decimal({column.precision},{column.scale})"),
    )
    # Prices may be zero (free goods); a volume per unit must be positive.
    return F.when(amount >= 0 if name == "product_price" else amount > 0, amount)


def _channel(text: Column) -> Column:
    lowered = F.lower(text)
    known = list(CANONICAL_CHANNEL.items())
    canonical = F.when(lowered == known[0][0], F.lit(known[0][1]))
    for spelling_lower, spelling in known[1:]:
        canonical = canonical.when(lowered == spelling_lower, F.lit(spelling))
    return F.when(F.length(text) > 0, canonical.otherwise(text))


def _parsed_value(name: str, has_order_date: bool, ingest_date: date) -> Column:
    """The column's value under its rule, or null when the rule is broken (or it is empty)."""
    kind = COLUMNS_BY_NAME[name].kind
    text = F.trim(F.col(name))
    if kind is ColumnKind.DATE:
        # The pattern rejects other layouts; to_date (CORRECTED policy) rejects 2024-02-30.
        parsed = F.when(text.rlike(DATE_PATTERN.pattern), F.to_date(text, "yyyy-MM-dd"))
        return parsed if has_order_date else F.lit(ingest_date)
    if name == "status":
        return F.when(F.lower(text).isin(*STATUSES), F.lower(text))
    if name == "point_of_sale_channel":
        return _channel(text)
    handlers = {
        ColumnKind.INTEGER: lambda: _integer(text),
        ColumnKind.DECIMAL: lambda: _decimal(name, text),
    }
    return handlers.get(kind, lambda: F.when(F.length(text) > 0, text))()


def _is_missing(name: str, has_order_date: bool) -> Column:
    if name == "order_date" and not has_order_date:
        return F.lit(False)
    return F.col(name).isNull() | (F.col(name) == "")


def _rule_text(name: str) -> str:
    return f"{name} must be {COLUMNS_BY_NAME[name].rule}"


def validate(df: DataFrame, *, has_order_date: bool, ingest_date: date) -> DataFrame:
    """Add the typed value of every input column, the first broken rule's reason code and a
    readable detail (null for a valid row), and whether the row had undecodable bytes."""
    with_values = df.select(
        "*",
        *(
            _parsed_value(name, has_order_date, ingest_date).alias(typed(name))
            for name in INPUT_COLUMN_NAMES
        ),
    )
    malformed = F.col(CORRUPT_COLUMN).isNotNull()
    reason = F.when(malformed, F.lit(RejectReason.MALFORMED_ROW.value))
    detail = F.when(
        malformed,
        F.concat(
            F.lit("the row does not have the header's number of fields: "),
            F.substring(F.col(CORRUPT_COLUMN), 1, MAX_DETAIL_CHARS),
        ),
    )
    for name in RULE_ORDER:
        # An optional column that is present but empty breaks its rule (not missing_field,
        # which is about required fields).
        missing = _is_missing(name, has_order_date) & F.lit(COLUMNS_BY_NAME[name].required)
        broken = F.col(typed(name)).isNull()
        reason = reason.when(missing, F.lit(RejectReason.MISSING_FIELD.value)).when(
            broken, F.lit(COLUMNS_BY_NAME[name].reject_reason.value)
        )
        detail = detail.when(missing, F.lit(f"{name} is empty")).when(
            broken,
            F.concat(
                F.lit(f"{_rule_text(name)}, got '"),
                F.substring(F.coalesce(F.col(name), F.lit("")), 1, MAX_DETAIL_CHARS),
                F.lit("'"),
            ),
        )
    undecodable = F.lit(False)
    for name in INPUT_COLUMN_NAMES:
        undecodable = undecodable | F.coalesce(
            F.instr(F.col(name), _REPLACEMENT_CHAR) > 0, F.lit(False)
        )
    return with_values.select(
        "*",
        reason.alias(REASON_COLUMN),
        detail.alias(DETAIL_COLUMN),
        undecodable.alias(BAD_UTF8_COLUMN),
    )


def duplicate_keys(checked: DataFrame) -> DataFrame:
    """Line keys that occur more than once among rule-valid rows, with the read position of
    their first occurrence. Only the key and position travel through the shuffle."""
    keys = [F.col(typed(k)).alias(typed(k)) for k in LINE_KEY]
    return (
        checked.where(F.col(REASON_COLUMN).isNull())
        .groupBy(*keys)
        .agg(F.min(ROW_ID_COLUMN).alias(DUPLICATE_OF_COLUMN), F.count(F.lit(1)).alias("_n"))
        .where(F.col("_n") > 1)
        .drop("_n")
    )


def mark_duplicates(checked: DataFrame, duplicates: DataFrame) -> DataFrame:
    """Reject every later occurrence of a line key as duplicate_line (first one in file order
    is kept; exact repeats included)."""
    joined = checked.join(duplicates, on=[typed(k) for k in LINE_KEY], how="left")
    is_later = F.col(REASON_COLUMN).isNull() & (
        F.col(DUPLICATE_OF_COLUMN).isNotNull()
        & (F.col(ROW_ID_COLUMN) != F.col(DUPLICATE_OF_COLUMN))
    )
    key_text = F.format_string(
        f"line key ({', '.join(LINE_KEY)}) = (%d, %d) already appeared in an earlier row",
        *(F.col(typed(k)) for k in LINE_KEY),
    )
    return joined.withColumns(
        {
            REASON_COLUMN: F.when(is_later, F.lit(RejectReason.DUPLICATE_LINE.value)).otherwise(
                F.col(REASON_COLUMN)
            ),
            DETAIL_COLUMN: F.when(is_later, key_text).otherwise(F.col(DETAIL_COLUMN)),
        }
    ).drop(DUPLICATE_OF_COLUMN)
