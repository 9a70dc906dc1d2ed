"""The orders transform as a straightforward pandas script: a yardstick for the Glue job.

    python -m bench.pandas_reference IN.csv OUT_DIR [--ingest-date YYYY-MM-DD]

Same work as the job on one machine: contract rules and reasons, de-duplication, curated
Parquet partitioned by channel/date, three reports, rejects and a small manifest. It is
written the way a data engineer would first write it with pandas (vectorised, no tuning).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from duffbeer.contract import (
    CANONICAL_CHANNEL,
    COLUMNS_BY_NAME,
    DATE_PATTERN,
    INPUT_COLUMN_NAMES,
    INT_MAX,
    INTEGER_PATTERN,
    MAX_BATCH_TOTAL_SALES,
    MAX_BATCH_TOTAL_VOLUME_L,
    MAX_LINE_TOTAL,
    MAX_PRICE_ANY_QUANTITY,
    MAX_TEXT_LENGTHS,
    PRICE_PATTERN,
    RULE_ORDER,
    STATUSES,
    VOLUME_PATTERN,
    RejectReason,
    normalise_header,
)


def read(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """All fields as text, plus the rows with the wrong field count (as malformed rejects)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header = [normalise_header(n) for n in next(csv.reader(handle))]
    malformed: list[str] = []

    def keep_malformed(row: pa_csv.InvalidRow) -> str:
        malformed.append(row.text or "")
        return "skip"

    table = pa_csv.read_csv(
        path,
        read_options=pa_csv.ReadOptions(column_names=header, skip_rows=1),
        parse_options=pa_csv.ParseOptions(invalid_row_handler=keep_malformed),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False
        ),
    )
    frame = table.to_pandas()
    for name in INPUT_COLUMN_NAMES:
        if name not in frame:
            frame[name] = ""
    bad = pd.DataFrame({"line": malformed, "reject_reason": RejectReason.MALFORMED_ROW.value})
    return frame, bad, "order_date" in header


def validate(frame: pd.DataFrame, has_date: bool) -> pd.DataFrame:
    text = {name: frame[name].str.strip() for name in INPUT_COLUMN_NAMES}
    values: dict[str, pd.Series] = {}
    bad: dict[str, pd.Series] = {}
    for name in ("client_id", "order_id", "product_id", "product_ccf"):
        ok = text[name].str.fullmatch(INTEGER_PATTERN.pattern.strip("^$"))
        number = pd.to_numeric(text[name].where(ok), errors="coerce")
        bad[name] = ~(ok & number.between(1, INT_MAX))
        values[name] = number.where(~bad[name]).astype("Int64")
    amounts: dict[str, pd.Series] = {}
    for name, pattern in (("product_price", PRICE_PATTERN), ("product_volume", VOLUME_PATTERN)):
        ok = text[name].str.fullmatch(pattern.pattern.strip("^$"))
        amounts[name] = pd.to_numeric(text[name].where(ok), errors="coerce")
        amount = amounts[name]
        bad[name] = ~ok | (amount <= 0 if name == "product_volume" else amount < 0)
        values[name] = text[name].where(~bad[name])
    # A line total must fit its column: checked exactly (in Decimal) on the few rows whose
    # price could exceed it at some quantity.
    price = amounts["product_price"].where(~bad["product_price"])
    risky = (price > float(MAX_PRICE_ANY_QUANTITY)) & ~bad["product_ccf"]
    beyond = pd.Series(False, index=frame.index)
    if risky.any():
        beyond[risky] = [
            Decimal(p) * int(q) > MAX_LINE_TOTAL
            for p, q in zip(
                values["product_price"][risky], values["product_ccf"][risky], strict=True
            )
        ]
    bad["product_ccf"] = bad["product_ccf"] | beyond
    values["product_ccf"] = values["product_ccf"].where(~beyond)
    too_long = {
        name: text[name].str.len() > limit for name, limit in MAX_TEXT_LENGTHS.items()
    }
    for name in ("client_name", "product_description", "point_of_sale_channel"):
        bad[name] = (text[name] == "") | too_long[name]
        values[name] = text[name]
    lowered = text["point_of_sale_channel"].str.lower()
    values["point_of_sale_channel"] = lowered.map(CANONICAL_CHANNEL).fillna(
        text["point_of_sale_channel"]
    )
    values["status"] = text["status"].str.lower()
    bad["status"] = ~values["status"].isin(STATUSES)
    if has_date:
        dates = pd.to_datetime(text["order_date"], format="%Y-%m-%d", errors="coerce")
        ok = text["order_date"].str.fullmatch(DATE_PATTERN.pattern.strip("^$")) & dates.notna()
        bad["order_date"] = ~ok
        values["order_date"] = text["order_date"]
    else:
        bad["order_date"] = pd.Series(False, index=frame.index)
        values["order_date"] = text["order_date"]
    reason = pd.Series(None, index=frame.index, dtype="object")
    for name in reversed(RULE_ORDER):
        column = COLUMNS_BY_NAME[name]
        reason = reason.mask(bad[name], column.reject_reason.value)
        if name in too_long:
            reason = reason.mask(too_long[name], RejectReason.FIELD_TOO_LONG.value)
        if column.required or (name == "order_date" and has_date):
            reason = reason.mask(frame[name] == "", RejectReason.MISSING_FIELD.value)
    out = pd.DataFrame(values)
    out["reject_reason"] = reason
    valid = reason.isna()
    duplicate = valid & out[valid].duplicated(["order_id", "product_id"], keep="first").reindex(
        out.index, fill_value=False
    )
    out.loc[duplicate, "reject_reason"] = RejectReason.DUPLICATE_LINE.value
    return out


def run(source: Path, out: Path, ingest_date: str) -> dict[str, object]:
    frame, malformed, has_date = read(source)
    if not has_date:
        frame["order_date"] = ingest_date
    checked = validate(frame, has_date)
    rejected = checked["reject_reason"].notna()
    rejects = pd.concat(
        [frame[rejected].assign(reject_reason=checked.loc[rejected, "reject_reason"]), malformed]
    )
    rejects.to_parquet(out / "rejects.parquet", index=False)
    lines = checked[~rejected].drop(columns=["reject_reason"]).copy()
    price = lines["product_price"].map(Decimal)
    volume = lines["product_volume"].map(Decimal)
    units = lines["product_ccf"].astype("int64")
    lines["line_total"] = price * units
    lines["line_volume_l"] = volume * units
    table = pa.Table.from_pandas(lines, preserve_index=False)
    pq.write_to_dataset(
        table, out / "order_lines", partition_cols=["point_of_sale_channel", "order_date"]
    )
    client = lines.groupby("client_id").agg(
        client_name=("client_name", "first"),
        total_orders=("order_id", "nunique"),
        total_lines=("order_id", "size"),
        total_units=("product_ccf", "sum"),
        total_sales=("line_total", "sum"),
    )
    product = lines.groupby(["product_id", "point_of_sale_channel"]).agg(
        product_description=("product_description", "first"),
        orders=("order_id", "nunique"),
        units=("product_ccf", "sum"),
        total_sales=("line_total", "sum"),
        total_volume_l=("line_volume_l", "sum"),
    )
    status = lines.groupby("status").agg(
        orders=("order_id", "nunique"),
        lines=("order_id", "size"),
        total_sales=("line_total", "sum"),
    )
    for name, report in (
        ("client_sales", client),
        ("product_channel_sales", product),
        ("order_status", status),
    ):
        report.reset_index().astype({"total_sales": str}).to_parquet(
            out / f"{name}.parquet", index=False
        )
    sales = sum(lines["line_total"], Decimal("0.00"))
    volume = sum(lines["line_volume_l"], Decimal("0.000"))
    if sales > MAX_BATCH_TOTAL_SALES or volume > MAX_BATCH_TOTAL_VOLUME_L:
        raise SystemExit(f"batch totals beyond the exact sums: sales {sales}, volume {volume}")
    manifest = {
        "rows_read": len(frame) + len(malformed),
        "rows_valid": len(lines),
        "rows_rejected": len(rejects),
        "rejects_by_reason": rejects["reject_reason"].value_counts().sort_index().to_dict(),
        "total_sales": str(sales),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--ingest-date", default="2026-11-28")
    ns = parser.parse_args(argv)
    ns.out.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run(ns.source, ns.out, ns.ingest_date)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
