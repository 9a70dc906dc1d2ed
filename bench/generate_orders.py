"""Seeded generator of contract-shaped order files, with an optional share of dirty rows.

    python -m bench.generate_orders --rows 1000000 --dirty-fraction 0.02 --seed 1 out.csv

Rows are built column-wise with pyarrow compute (no Python loop per row), so 10M rows take
well under a minute. Dirty rows are every k-th row (k = 1 / fraction), cycling through every
reject reason of the contract, so their number per reason is exact and known in advance.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from duffbeer.contract import INPUT_COLUMN_NAMES, REQUIRED_COLUMNS, RejectReason

CHUNK_ROWS = 1_000_000
LINES_PER_ORDER = 3
ORDER_ID_BASE = 100_000
CLIENT_ID_BASE = 1_000
DAYS = 30
BASE_DATE = date(2026, 11, 1)

_FIRST = ["Moe's", "Kwik-E", "Krusty", "Springfield", "Shelbyville", "Capital City", "Ogdenville"]
_KIND = ["Tavern", "Mart", "Burger", "Mall", "Bowl-a-Rama", "Lanes", "Diner"]
# Names that need RFC 4180 quoting: commas, doubled quotes, both.
_QUOTED = [
    'The "Frying" Dutchman',
    "Krusty Burger, Inc.",
    'Luigi\'s, "Authentic" Italian',
    "Barney's Bowl-a-Rama, Ltd.",
]
_PRODUCTS = [
    ("Duff Classic", "2.50", "0.33"),
    ("Duff Lite", "2.00", "0.5"),
    ("Duff Dry", "3.00", "0.25"),
    ("Duff Special", "4.00", "1.00"),
    ('Duff "Extra" Stout', "3.75", "0.5"),
    ("Duff Red, Limited", "5.10", "0.75"),
    ("Duff Zero", "1.99", "0.33"),
    ("Duff Blue", "0", "0.33"),
    ("Fudd", "1.25", "0.355"),
    ("Buzz Cola", "0.99", "2"),
]
# Valid spellings: known channels in any case and spacing, plus one unknown channel.
_CHANNELS = ["Retail", "B2B", "Online", "Wholesale", " retail", "ONLINE", "Kiosk"]
_STATUSES = ["created", "delivered", "broken", " Delivered "]

# One bad value per rule; the column it goes into and the reason the job must report.
_BAD_VALUES: dict[RejectReason, tuple[str, str]] = {
    RejectReason.BAD_CLIENT_ID: ("client_id", "-7"),
    RejectReason.BAD_CLIENT_NAME: ("client_name", "   "),
    RejectReason.BAD_ORDER_ID: ("order_id", "12a"),
    RejectReason.BAD_PRODUCT_ID: ("product_id", "0"),
    RejectReason.BAD_PRODUCT_DESCRIPTION: ("product_description", '"  "'),
    RejectReason.BAD_PRICE: ("product_price", '"2,50"'),
    RejectReason.BAD_QUANTITY: ("product_ccf", "1.5"),
    RejectReason.BAD_VOLUME: ("product_volume", "0.000"),
    RejectReason.BAD_CHANNEL: ("point_of_sale_channel", "  "),
    RejectReason.BAD_STATUS: ("status", "shipped"),
    RejectReason.BAD_DATE: ("order_date", "2026-02-30"),
    RejectReason.FIELD_TOO_LONG: ("product_description", "D" * 201),
}


def _csv_field(value: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([value])
    return buffer.getvalue()


def client_names(count: int) -> list[str]:
    """`count` client names, some of them needing quotes in a CSV."""
    plain = [f"{a} {b}" for a in _FIRST for b in _KIND]
    names = [*_QUOTED, *plain]
    return [names[i % len(names)] + ("" if i < len(names) else f" #{i}") for i in range(count)]


@dataclass(frozen=True)
class GeneratedFile:
    path: Path
    rows: int
    bytes: int
    dirty_by_reason: dict[str, int]

    @property
    def dirty_rows(self) -> int:
        return sum(self.dirty_by_reason.values())


def dirty_kinds(order_date_column: bool) -> list[RejectReason]:
    """The reject reasons a dirty row can carry, in the order they are cycled through."""
    return [r for r in RejectReason if order_date_column or r is not RejectReason.BAD_DATE]


def _dirty_positions(rows: int, fraction: float) -> np.ndarray:
    if fraction <= 0 or rows < 2:
        return np.empty(0, dtype=np.int64)
    step = max(2, round(1 / fraction))  # never two dirty rows in a row: a duplicate copies
    return np.arange(step - 1, rows, step, dtype=np.int64)  # the clean row before it


def _clean_columns(
    start: int, count: int, rng: np.random.Generator, names: pa.Array, order_date_column: bool
) -> dict[str, pa.Array]:
    index = np.arange(start, start + count, dtype=np.int64)
    order = index // LINES_PER_ORDER
    line = index % LINES_PER_ORDER
    product = (order * 7 + line) % len(_PRODUCTS)  # distinct within an order
    client = (order * 2_654_435_761) % len(names)
    quote_all = [_csv_field(p[0]) for p in _PRODUCTS]
    columns: dict[str, pa.Array] = {
        "client_id": pc.cast(pa.array(client + CLIENT_ID_BASE), pa.string()),
        "client_name": pc.take(names, pa.array(client)),
        "order_id": pc.cast(pa.array(order + ORDER_ID_BASE), pa.string()),
        "product_id": pc.cast(pa.array(product + 100), pa.string()),
        "product_description": pc.take(pa.array(quote_all), pa.array(product)),
        "product_price": pc.take(pa.array([p[1] for p in _PRODUCTS]), pa.array(product)),
        "product_ccf": pc.cast(pa.array(rng.integers(1, 49, count)), pa.string()),
        "product_volume": pc.take(pa.array([p[2] for p in _PRODUCTS]), pa.array(product)),
        "point_of_sale_channel": pc.take(pa.array(_CHANNELS), pa.array(order % len(_CHANNELS))),
        "status": pc.take(pa.array(_STATUSES), pa.array(rng.integers(0, len(_STATUSES), count))),
    }
    if order_date_column:
        days = [(BASE_DATE + timedelta(days=d)).isoformat() for d in range(DAYS)]
        columns["order_date"] = pc.take(pa.array(days), pa.array((order * 31) % DAYS))
    return columns


def _with(array: pa.Array, positions: np.ndarray, value: str) -> pa.Array:
    return _replace(array, positions, pa.array([value] * len(positions), pa.string()))


def _apply_dirty(
    columns: dict[str, pa.Array], local: np.ndarray, kinds: np.ndarray, reasons: list[RejectReason]
) -> tuple[dict[str, pa.Array], np.ndarray, np.ndarray]:
    """Break the chosen rows; returns the columns and the rows to make malformed/duplicate."""
    for code, reason in enumerate(reasons):
        rows = local[kinds == code]
        if reason in _BAD_VALUES:
            name, value = _BAD_VALUES[reason]
            columns[name] = _with(columns[name], rows, value)
        elif reason is RejectReason.MISSING_FIELD:
            # Cycle through the required columns so every one of them is found empty.
            for offset, name in enumerate(REQUIRED_COLUMNS):
                columns[name] = _with(columns[name], rows[offset :: len(REQUIRED_COLUMNS)], "")
    malformed = local[kinds == reasons.index(RejectReason.MALFORMED_ROW)]
    duplicate = local[kinds == reasons.index(RejectReason.DUPLICATE_LINE)]
    return columns, malformed, duplicate


def _chunk_bytes(
    columns: dict[str, pa.Array], malformed: np.ndarray, duplicate: np.ndarray
) -> bytes:
    fields = list(columns.values())
    lines = pc.binary_join_element_wise(*fields, ",")
    # A malformed row: the same fields without the last one (one field short).
    short = pc.binary_join_element_wise(*fields[:-1], ",")
    lines = _replace(lines, malformed, pc.take(short, pa.array(malformed)))
    # An exact repeat of the (clean) row before it.
    lines = _replace(lines, duplicate, pc.take(lines, pa.array(duplicate - 1)))
    terminated = pc.binary_join_element_wise(lines, pa.scalar("\n"), "")
    array = terminated.combine_chunks() if isinstance(terminated, pa.ChunkedArray) else terminated
    offsets = np.frombuffer(
        array.buffers()[1], dtype=np.int32, count=len(array) + 1, offset=array.offset * 4
    )
    data = array.buffers()[2]
    return data.to_pybytes()[offsets[0] : offsets[-1]]


def _replace(lines: pa.Array, positions: np.ndarray, values: pa.Array) -> pa.Array:
    if len(positions) == 0:
        return lines
    mask = np.zeros(len(lines), dtype=bool)
    mask[positions] = True
    return pc.replace_with_mask(lines, pa.array(mask), values)


def generate_orders(
    path: Path | str,
    rows: int,
    *,
    dirty_fraction: float = 0.0,
    seed: int = 1,
    order_date_column: bool = True,
    crlf: bool = False,
) -> GeneratedFile:
    """Write `rows` data rows (plus a header) to `path`; the same arguments give the same file."""
    if rows < 0 or not 0.0 <= dirty_fraction < 0.5:
        raise ValueError("rows must be >= 0 and dirty_fraction in [0, 0.5)")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = pa.array([_csv_field(n) for n in client_names(997)])
    reasons = dirty_kinds(order_date_column)
    header = [c for c in INPUT_COLUMN_NAMES if order_date_column or c != "order_date"]
    dirty = _dirty_positions(rows, dirty_fraction)
    dirty_kind = np.arange(len(dirty)) % len(reasons)
    counts: Counter[str] = Counter()
    with target.open("wb") as out:
        out.write((",".join(header) + ("\r\n" if crlf else "\n")).encode())
        for start in range(0, rows, CHUNK_ROWS):
            count = min(CHUNK_ROWS, rows - start)
            selected = (dirty >= start) & (dirty < start + count)
            in_chunk, kinds = dirty[selected], dirty_kind[selected]
            columns = _clean_columns(start, count, rng, names, order_date_column)
            columns, malformed, duplicate = _apply_dirty(columns, in_chunk - start, kinds, reasons)
            counts.update(reasons[k].value for k in kinds)
            data = _chunk_bytes(columns, malformed, duplicate)
            out.write(data.replace(b"\n", b"\r\n") if crlf else data)
    return GeneratedFile(target, rows, target.stat().st_size, dict(sorted(counts.items())))


def with_quoted_line_break(source: Path, target: Path, row: int) -> Path:
    """A copy of `source` whose data row number `row` (from 1) has a client name holding a
    quoted line break (RFC 4180: one field over two lines); every other line is the same."""
    with source.open("rb") as lines, target.open("wb") as out:
        for number, line in enumerate(lines):
            if number != row:
                out.write(line)
                continue
            fields = next(csv.reader([line.decode()]))
            fields[1] += "\nBranch office"
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerow(fields)
            out.write(text.getvalue().encode())
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--dirty-fraction", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--order-date-column", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("out", type=Path)
    ns = parser.parse_args(argv)
    result = generate_orders(
        ns.out,
        ns.rows,
        dirty_fraction=ns.dirty_fraction,
        seed=ns.seed,
        order_date_column=ns.order_date_column,
    )
    print(
        f"wrote {result.rows} rows ({result.bytes} bytes, {result.dirty_rows} dirty: "
        f"{result.dirty_by_reason}) to {result.path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
