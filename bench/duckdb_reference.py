"""The orders transform in DuckDB: the single-machine near-limit yardstick for the Glue job.

    python -m bench.duckdb_reference IN.csv OUT_DIR [--ingest-date YYYY-MM-DD]

Same work as the job: contract rules and reasons, de-duplication (first in file order),
curated Parquet partitioned by channel/date, three reports, rejects and a small manifest.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb

from duffbeer.contract import (
    CANONICAL_CHANNEL,
    COLUMNS_BY_NAME,
    DATE_PATTERN,
    INPUT_COLUMN_NAMES,
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
)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _rules(has_date: bool, ingest_date: str) -> tuple[str, str]:
    """SELECT expressions for typed values and the reject reason."""
    t = {n: f"trim(coalesce({n}, ''))" for n in INPUT_COLUMN_NAMES}
    channel_map = " ".join(
        f"WHEN lower({t['point_of_sale_channel']}) = {_quote(k)} THEN {_quote(v)}"
        for k, v in CANONICAL_CHANNEL.items()
    )

    def integer(n: str) -> str:
        return (
            f"CASE WHEN regexp_full_match({t[n]}, {_quote(INTEGER_PATTERN.pattern.strip('^$'))})"
            f" AND TRY_CAST({t[n]} AS BIGINT) BETWEEN 1 AND 2147483647"
            f" THEN CAST({t[n]} AS INTEGER) END"
        )

    def decimal(n: str, pattern: str, op: str) -> str:
        c = COLUMNS_BY_NAME[n]
        kind = f"DECIMAL({c.precision},{c.scale})"
        return (
            f"CASE WHEN regexp_full_match({t[n]}, {_quote(pattern)})"
            f" AND CAST({t[n]} AS {kind}) {op} 0 THEN CAST({t[n]} AS {kind}) END"
        )

    date_shape = _quote(DATE_PATTERN.pattern.strip("^$"))
    date_expr = (
        f"CASE WHEN regexp_full_match({t['order_date']}, {date_shape})"
        f" THEN TRY_STRPTIME({t['order_date']}, '%Y-%m-%d')::DATE END"
        if has_date
        else f"DATE {_quote(ingest_date)}"
    )
    values = {
        "client_id": integer("client_id"),
        "client_name": f"NULLIF({t['client_name']}, '')",
        "order_id": integer("order_id"),
        "product_id": integer("product_id"),
        "product_description": f"NULLIF({t['product_description']}, '')",
        "product_price": decimal("product_price", PRICE_PATTERN.pattern.strip("^$"), ">="),
        "product_ccf": integer("product_ccf"),
        "product_volume": decimal("product_volume", VOLUME_PATTERN.pattern.strip("^$"), ">"),
        "point_of_sale_channel": (
            f"CASE {channel_map} ELSE NULLIF({t['point_of_sale_channel']}, '') END"
        ),
        "status": f"CASE WHEN lower({t['status']}) IN ({', '.join(map(_quote, STATUSES))})"
        f" THEN lower({t['status']}) END",
        "order_date": date_expr,
    }
    for name, limit in MAX_TEXT_LENGTHS.items():
        values[name] = f"CASE WHEN length({t[name]}) <= {limit} THEN {values[name]} END"
    typed = ",\n".join(f"{expr} AS v_{name}" for name, expr in values.items())
    branches = []
    for name in RULE_ORDER:
        column = COLUMNS_BY_NAME[name]
        if column.required:
            branches.append(
                f"WHEN {name} IS NULL OR {name} = '' THEN '{RejectReason.MISSING_FIELD.value}'"
            )
        if name in MAX_TEXT_LENGTHS:
            branches.append(
                f"WHEN length({t[name]}) > {MAX_TEXT_LENGTHS[name]}"
                f" THEN '{RejectReason.FIELD_TOO_LONG.value}'"
            )
        branches.append(f"WHEN v_{name} IS NULL THEN '{column.reject_reason.value}'")
    return typed, "CASE " + " ".join(branches) + " END"


def run(source: Path, out: Path, ingest_date: str) -> dict[str, object]:
    con = duckdb.connect()
    with source.open(encoding="utf-8-sig", newline="") as handle:
        header = next(csv.reader(handle))
    names = [h.strip().lower() for h in header]
    has_date = "order_date" in names
    missing = [n for n in INPUT_COLUMN_NAMES if n not in names]
    typed, reason = _rules(has_date, ingest_date)
    columns = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in names) + "}"
    absent = "".join(f", NULL::VARCHAR AS {m}" for m in missing)
    # Rows with the wrong field count go to DuckDB's reject_errors table (malformed_row).
    con.execute(
        f"""CREATE TABLE raw AS SELECT *{absent}
        FROM read_csv({_quote(str(source))}, columns={columns}, header=true, delim=',',
                      quote='"', escape='"', store_rejects=true, strict_mode=true)"""
    )
    con.execute(
        f"""CREATE TABLE checked AS
        WITH typed AS (SELECT row_number() OVER () AS _row, *, {typed} FROM raw),
        bounded AS (SELECT * REPLACE (CASE WHEN v_product_price <= {MAX_PRICE_ANY_QUANTITY}
            OR v_product_price::DECIMAL(38,2) * v_product_ccf <= {MAX_LINE_TOTAL}
            THEN v_product_ccf END AS v_product_ccf) FROM typed),
        ruled AS (SELECT *, {reason} AS reject_reason FROM bounded)
        SELECT * REPLACE (CASE WHEN reject_reason IS NULL AND row_number() OVER (
            PARTITION BY v_order_id, v_product_id, reject_reason IS NULL ORDER BY _row) > 1
            THEN '{RejectReason.DUPLICATE_LINE.value}' ELSE reject_reason END AS reject_reason)
        FROM ruled"""
    )
    con.execute(
        """CREATE VIEW lines AS SELECT v_client_id AS client_id, v_client_name AS client_name,
        v_order_id AS order_id, v_product_id AS product_id,
        v_product_description AS product_description, v_product_price AS product_price,
        v_product_ccf AS product_ccf, v_product_volume AS product_volume, v_status AS status,
        CAST(v_product_price * v_product_ccf AS DECIMAL(18,2)) AS line_total,
        CAST(v_product_volume * v_product_ccf AS DECIMAL(18,3)) AS line_volume_l,
        v_point_of_sale_channel AS point_of_sale_channel, v_order_date AS order_date
        FROM checked WHERE reject_reason IS NULL"""
    )
    con.execute(
        f"COPY lines TO {_quote(str(out / 'order_lines'))} "
        "(FORMAT parquet, PARTITION_BY (point_of_sale_channel, order_date), OVERWRITE_OR_IGNORE)"
    )
    raw_columns = ", ".join(INPUT_COLUMN_NAMES)
    nulls = ", ".join("NULL" for _ in INPUT_COLUMN_NAMES)
    con.execute(
        f"COPY (SELECT {raw_columns}, reject_reason, _row AS source_row FROM checked "
        f"WHERE reject_reason IS NOT NULL UNION ALL SELECT {nulls}, "
        f"'{RejectReason.MALFORMED_ROW.value}', line FROM reject_errors) "
        f"TO {_quote(str(out / 'rejects.parquet'))} (FORMAT parquet)"
    )
    reports = {
        "client_sales": """SELECT client_id, first(client_name) AS client_name,
            count(DISTINCT order_id) AS total_orders, count(*) AS total_lines,
            sum(product_ccf) AS total_units, sum(line_total) AS total_sales
            FROM lines GROUP BY client_id ORDER BY client_id""",
        "product_channel_sales": """SELECT product_id, first(product_description)
            AS product_description, point_of_sale_channel, count(DISTINCT order_id) AS orders,
            sum(product_ccf) AS units, sum(line_total) AS total_sales,
            sum(line_volume_l) AS total_volume_l FROM lines
            GROUP BY product_id, point_of_sale_channel ORDER BY 1, 3""",
        "order_status": """SELECT status, count(DISTINCT order_id) AS orders, count(*) AS lines,
            sum(line_total) AS total_sales FROM lines GROUP BY status ORDER BY status""",
    }
    for name, sql in reports.items():
        con.execute(f"COPY ({sql}) TO {_quote(str(out / f'{name}.parquet'))} (FORMAT parquet)")
    by_reason = dict(
        con.execute(
            "SELECT reject_reason, count(*) FROM checked WHERE reject_reason IS NOT NULL "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    malformed = con.execute("SELECT count(*) FROM reject_errors").fetchone()
    if malformed and malformed[0]:
        by_reason[RejectReason.MALFORMED_ROW.value] = int(malformed[0])
    valid, sales, volume = con.execute(
        "SELECT count(*), sum(line_total), sum(line_volume_l) FROM lines"
    ).fetchone() or (0, 0, 0)
    if (sales or 0) > MAX_BATCH_TOTAL_SALES or (volume or 0) > MAX_BATCH_TOTAL_VOLUME_L:
        raise SystemExit(f"batch totals beyond the exact sums: sales {sales}, volume {volume}")
    rejected = sum(by_reason.values())
    manifest = {
        "rows_read": int(valid) + rejected,
        "rows_valid": int(valid),
        "rows_rejected": rejected,
        "rejects_by_reason": dict(sorted(by_reason.items())),
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
