"""The orders data contract: columns, types, rules, reject reasons and output schemas.

This module is the single source of truth. The validation Lambda, the Glue job, the Glue
Catalog definitions, the report SQL and the API import these names instead of restating
them. It has no third-party imports so that it can ship in every Lambda zip and to Glue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum


class RejectReason(StrEnum):
    """Why a row was rejected. Values are the reason codes written to the rejects output."""

    MALFORMED_ROW = "malformed_row"  # wrong number of fields, broken quoting
    MISSING_FIELD = "missing_field"  # a required field is empty
    BAD_CLIENT_ID = "bad_client_id"
    BAD_CLIENT_NAME = "bad_client_name"
    BAD_ORDER_ID = "bad_order_id"
    BAD_PRODUCT_ID = "bad_product_id"
    BAD_PRODUCT_DESCRIPTION = "bad_product_description"
    BAD_PRICE = "bad_price"
    BAD_QUANTITY = "bad_quantity"
    BAD_VOLUME = "bad_volume"
    BAD_CHANNEL = "bad_channel"
    BAD_STATUS = "bad_status"
    BAD_DATE = "bad_date"
    FIELD_TOO_LONG = "field_too_long"  # a text field longer than MAX_TEXT_LENGTHS allows
    DUPLICATE_LINE = "duplicate_line"


class ColumnKind(StrEnum):
    INTEGER = "integer"
    STRING = "string"
    DECIMAL = "decimal"
    DATE = "date"


@dataclass(frozen=True)
class InputColumn:
    """One column of the input CSV and the rule it must satisfy."""

    name: str
    kind: ColumnKind
    required: bool
    reject_reason: RejectReason
    rule: str
    precision: int = 0
    scale: int = 0

    @property
    def glue_type(self) -> str:
        """The Hive/Glue type of the column once parsed."""
        return {
            ColumnKind.INTEGER: "int",
            ColumnKind.STRING: "string",
            ColumnKind.DATE: "date",
            ColumnKind.DECIMAL: f"decimal({self.precision},{self.scale})",
        }[self.kind]


INPUT_COLUMNS: tuple[InputColumn, ...] = (
    InputColumn("client_id", ColumnKind.INTEGER, True, RejectReason.BAD_CLIENT_ID, "integer > 0"),
    InputColumn(
        "client_name",
        ColumnKind.STRING,
        True,
        RejectReason.BAD_CLIENT_NAME,
        "not empty; trimmed; at most 200 characters",
    ),
    InputColumn("order_id", ColumnKind.INTEGER, True, RejectReason.BAD_ORDER_ID, "integer > 0"),
    InputColumn("product_id", ColumnKind.INTEGER, True, RejectReason.BAD_PRODUCT_ID, "integer > 0"),
    InputColumn(
        "product_description",
        ColumnKind.STRING,
        True,
        RejectReason.BAD_PRODUCT_DESCRIPTION,
        "not empty; trimmed; at most 200 characters",
    ),
    InputColumn(
        "product_price",
        ColumnKind.DECIMAL,
        True,
        RejectReason.BAD_PRICE,
        "decimal >= 0 with a dot separator, at most 2 decimals",
        precision=12,
        scale=2,
    ),
    InputColumn(
        "product_ccf",
        ColumnKind.INTEGER,
        True,
        RejectReason.BAD_QUANTITY,
        "integer > 0 (units), with product_price x product_ccf at most 9999999999999999.99",
    ),
    InputColumn(
        "product_volume",
        ColumnKind.DECIMAL,
        True,
        RejectReason.BAD_VOLUME,
        "decimal > 0 (litres per unit), at most 3 decimals",
        precision=8,
        scale=3,
    ),
    InputColumn(
        "point_of_sale_channel",
        ColumnKind.STRING,
        True,
        RejectReason.BAD_CHANNEL,
        "not empty; trimmed; at most 50 characters; known channels in canonical case",
    ),
    InputColumn(
        "status", ColumnKind.STRING, True, RejectReason.BAD_STATUS, "created|delivered|broken"
    ),
    InputColumn("order_date", ColumnKind.DATE, False, RejectReason.BAD_DATE, "YYYY-MM-DD"),
)

COLUMNS_BY_NAME: dict[str, InputColumn] = {c.name: c for c in INPUT_COLUMNS}
# Free text is bounded, so that one row can neither fill a report response nor a partition
# path: a longer value (trimmed, in characters) rejects the row as field_too_long.
MAX_TEXT_LENGTHS: dict[str, int] = {
    "client_name": 200,
    "product_description": 200,
    "point_of_sale_channel": 50,
}
# Each channel is a partition of every table and a column of the reports: a file with more
# distinct channels among its valid rows than this is refused whole (TooManyChannelsError).
MAX_CHANNELS_PER_BATCH = 50
INPUT_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in INPUT_COLUMNS)
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in INPUT_COLUMNS if c.required)
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(c.name for c in INPUT_COLUMNS if not c.required)

# Checked in this order; a row gets the reason of the first rule it breaks.
RULE_ORDER: tuple[str, ...] = INPUT_COLUMN_NAMES

LINE_KEY: tuple[str, ...] = ("order_id", "product_id")

# Known channels are normalised to this spelling (matched case-insensitively after trim);
# any other non-empty channel is kept as given.
KNOWN_CHANNELS: tuple[str, ...] = ("Retail", "B2B", "Online", "Wholesale")
CANONICAL_CHANNEL: dict[str, str] = {c.lower(): c for c in KNOWN_CHANNELS}
# A channel value accepted by the API's `channel` filter (never interpolated into SQL; the
# pattern only keeps obviously malformed input away from the query layer).
CHANNEL_FILTER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.&-]{0,63}$")

STATUSES: tuple[str, ...] = ("created", "delivered", "broken")

DATE_FORMAT = "%Y-%m-%d"
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
INTEGER_PATTERN = re.compile(r"^[+]?\d{1,10}$")
PRICE_PATTERN = re.compile(r"^\+?\d{1,10}(\.\d{1,2})?$")
VOLUME_PATTERN = re.compile(r"^\+?\d{1,5}(\.\d{1,3})?$")
INT_MAX = 2_147_483_647
# The largest line total its decimal(18,2) column holds: a price x quantity above it is a
# bad quantity (it could not be stored, nor summed exactly). Prices up to the second value
# take any valid quantity, so only higher prices need the product computed.
MAX_LINE_TOTAL = Decimal("9999999999999999.99")
MAX_PRICE_ANY_QUANTITY = (MAX_LINE_TOTAL / INT_MAX).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)

# The report sums are taken over whole cents and millilitres as 64-bit integers. No line
# amount is negative, so no partial sum exceeds the batch's total: a batch within these
# totals is summed exactly, one beyond them is refused as a whole (a file-level fault).
MAX_BATCH_TOTAL_SALES = Decimal(2**63 - 1).scaleb(-2)
MAX_BATCH_TOTAL_VOLUME_L = Decimal(2**63 - 1).scaleb(-3)

# File-level limits (overridable by configuration).
DEFAULT_MAX_REJECT_RATIO = 0.05
DEFAULT_MAX_FILE_BYTES = 2 * 1024**3
CSV_EXTENSION = ".csv"
CSV_DELIMITER = ","
CSV_QUOTE = '"'
UTF8_BOM = "\ufeff"

# Derived columns (exact decimals; money becomes a JSON number only in the API).
LINE_TOTAL_TYPE = "decimal(18,2)"
LINE_VOLUME_TYPE = "decimal(18,3)"

# Lineage columns stamped on every curated line.
BATCH_ID_COLUMN = "batch_id"
SOURCE_EVENT_TIME_COLUMN = "source_event_time"

# Curated order lines (Parquet). Partition columns are not stored in the files.
CURATED_PARTITION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("point_of_sale_channel", "string"),
    ("order_date", "date"),
)
CURATED_DATA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("client_id", "int"),
    ("client_name", "string"),
    ("order_id", "int"),
    ("product_id", "int"),
    ("product_description", "string"),
    ("product_price", "decimal(12,2)"),
    ("product_ccf", "int"),
    ("product_volume", "decimal(8,3)"),
    ("status", "string"),
    ("line_total", LINE_TOTAL_TYPE),
    ("line_volume_l", LINE_VOLUME_TYPE),
    (BATCH_ID_COLUMN, "string"),
    (SOURCE_EVENT_TIME_COLUMN, "timestamp"),
)

# Per-batch reports computed by the Glue job (Parquet, one small file each).
CLIENT_SALES_COLUMNS: tuple[tuple[str, str], ...] = (
    ("client_id", "int"),
    ("client_name", "string"),
    ("total_orders", "bigint"),
    ("total_lines", "bigint"),
    ("total_units", "bigint"),
    ("total_sales", LINE_TOTAL_TYPE),
)
PRODUCT_CHANNEL_SALES_COLUMNS: tuple[tuple[str, str], ...] = (
    ("product_id", "int"),
    ("product_description", "string"),
    ("point_of_sale_channel", "string"),
    ("orders", "bigint"),
    ("units", "bigint"),
    ("total_sales", LINE_TOTAL_TYPE),
    ("total_volume_l", LINE_VOLUME_TYPE),
)
ORDER_STATUS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("status", "string"),
    ("orders", "bigint"),
    ("lines", "bigint"),
    ("total_sales", LINE_TOTAL_TYPE),
)

# Rejected rows: every input field as the original text, plus why and where.
REJECT_COLUMNS: tuple[tuple[str, str], ...] = (
    *((name, "string") for name in INPUT_COLUMN_NAMES),
    ("reject_reason", "string"),
    ("reject_detail", "string"),
    ("source_row", "bigint"),
    (BATCH_ID_COLUMN, "string"),
)

# The seed's summary table, exactly as specified (current state across batches).
ORDERS_SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("client_id", "int"),
    ("client_name", "string"),
    ("total_orders", "int"),
    ("total_sales", "double"),
)

# --- The current state (duffbeer/state.py, docs/adr/0045) --------------------------------
#
# After every batch the pipeline keeps the current version of every line and the report
# tables the API reads, as Iceberg tables, so that a read never ranks versions. A line's
# recency is the tuple RECENCY_KEY: the current version of a line key is its most recent
# version, and a client's name or a product's description is the one on its most recent
# current line.
RECENCY_KEY: tuple[str, ...] = (SOURCE_EVENT_TIME_COLUMN, BATCH_ID_COLUMN, *LINE_KEY)
SUM_MONEY_TYPE = "decimal(38,2)"
SUM_VOLUME_TYPE = "decimal(38,3)"

# Per client: totals (all_statuses = all_channels = 1), per status (all_channels = 1) and
# per channel (all_statuses = 1); orders are distinct orders.
CLIENT_REPORT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("client_id", "int"),
    ("status", "string"),
    ("point_of_sale_channel", "string"),
    ("all_statuses", "int"),
    ("all_channels", "int"),
    ("client_name", "string"),
    ("orders", "bigint"),
    ("lines", "bigint"),
    ("units", "bigint"),
    ("total_sales", SUM_MONEY_TYPE),
)
# Per client and order. An order spanning several days or channels reports the earliest;
# the latest_* columns are the recency key of the order's most recent line, whose client
# name it carries.
CLIENT_ORDERS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("client_id", "int"),
    ("order_id", "int"),
    ("order_date", "date"),
    ("point_of_sale_channel", "string"),
    ("lines", "bigint"),
    ("units", "bigint"),
    ("total_sales", SUM_MONEY_TYPE),
    *((f"{status}_lines", "bigint") for status in STATUSES),
    ("client_name", "string"),
    ("latest_event_time", "timestamp"),
    ("latest_batch_id", "string"),
    ("latest_product_id", "int"),
)
# Per product, channel and day; `orders` equals the lines, since the line key makes a
# product's lines belong to distinct orders. The latest_* columns are the recency key of
# the cell's most recent line, whose description it carries.
PRODUCT_DAILY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("product_id", "int"),
    ("point_of_sale_channel", "string"),
    ("order_date", "date"),
    ("product_description", "string"),
    ("latest_event_time", "timestamp"),
    ("latest_batch_id", "string"),
    ("latest_order_id", "int"),
    ("orders", "bigint"),
    ("units", "bigint"),
    ("total_sales", SUM_MONEY_TYPE),
    ("total_volume_l", SUM_VOLUME_TYPE),
)
# Per status and (channel, day) cell (all_statuses = 0), and per cell over all statuses (= 1):
# the distinct orders with a line there, its lines and their sales.
STATUS_DAILY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("status", "string"),
    ("point_of_sale_channel", "string"),
    ("order_date", "date"),
    ("all_statuses", "int"),
    ("orders", "bigint"),
    ("lines", "bigint"),
    ("total_sales", SUM_MONEY_TYPE),
)
# Per client, order and (channel, day) cell the order has lines in: their lines, units and
# sales. The top clients over a date range (and a channel) add up the matching rows; an
# order counts once however many matching cells it has (its id is in each row).
CLIENT_ORDER_CELLS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("client_id", "int"),
    ("order_id", "int"),
    ("point_of_sale_channel", "string"),
    ("order_date", "date"),
    ("lines", "bigint"),
    ("units", "bigint"),
    ("total_sales", SUM_MONEY_TYPE),
)
# The cells of every order whose current lines lie in more than one (channel, day) cell: one
# row per order and cell (status null) and per order, cell and status. Summing STATUS_DAILY
# over several cells counts such an order once per cell; these rows correct that exactly.
SPANNING_ORDER_CELLS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("order_id", "int"),
    ("status", "string"),
    ("point_of_sale_channel", "string"),
    ("order_date", "date"),
)


def normalise_header(name: str) -> str:
    """Header names match case-insensitively after trimming spaces (and a leading BOM)."""
    return name.lstrip(UTF8_BOM).strip().lower()


def canonical_channel(value: str) -> str:
    """Trim a channel and give known channels their canonical spelling."""
    trimmed = value.strip()
    return CANONICAL_CHANNEL.get(trimmed.lower(), trimmed)
