"""CSV rendering of report rows: RFC 4180 quoting, amounts to the cent, formula-safe text."""

from __future__ import annotations

import csv
import io

import pytest

from duffbeer.errors import InvalidParameterError
from lambdas.api import csv_export, params

PRODUCTS = csv_export.TABLES["/sales-by-product"]


def _product(description: str, sales: float) -> dict[str, object]:
    return {
        "product_id": 7,
        "product_description": description,
        "orders": 1,
        "units": 3,
        "sales": sales,
        "volume_l": 0.99,
        "by_channel": [],
    }


def test_text_is_quoted_as_rfc_4180_says_and_reads_back_unchanged() -> None:
    description = 'Duff "Extra", 6 x 0.33\nlimited'
    text = csv_export.render(PRODUCTS, {"products": [_product(description, 7.5)]})
    assert text == (
        "product_id,product_description,orders,units,sales,volume_l\r\n"
        '7,"Duff ""Extra"", 6 x 0.33\nlimited",1,3,7.50,0.99\r\n'
    )
    [_, row] = list(csv.reader(io.StringIO(text)))
    assert row[1] == description


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_text_a_spreadsheet_would_run_as_a_formula_gets_an_apostrophe(start: str) -> None:
    text = csv_export.render(PRODUCTS, {"products": [_product(f"{start}HYPERLINK(1)", 1)]})
    [_, row] = list(csv.reader(io.StringIO(text)))
    assert row[1] == f"'{start}HYPERLINK(1)"


def test_amounts_are_written_to_the_cent() -> None:
    text = csv_export.render(PRODUCTS, {"products": [_product("a", 0.1), _product("b", 1234567.5)]})
    assert [row[4] for row in csv.reader(io.StringIO(text))] == ["sales", "0.10", "1234567.50"]


@pytest.mark.parametrize(
    ("format_param", "accept", "chosen"),
    [
        (None, None, "json"),
        (None, "", "json"),
        (None, "text/csv", "csv"),
        (None, "TEXT/CSV; charset=utf-8", "csv"),
        (None, "application/json, text/csv", "json"),
        (None, "text/csv;q=0.9, application/json;q=0.8", "csv"),
        (None, "text/csv;q=0, */*", "json"),
        (None, "text/*, application/json;q=0.1", "csv"),
        (None, "text/csv;q=oops", "json"),
        ("json", "text/csv", "json"),
        ("csv", "application/json", "csv"),
    ],
)
def test_format_choice(format_param: str | None, accept: str | None, chosen: str) -> None:
    assert csv_export.chosen_format(format_param, accept) == chosen


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="format must be json or csv, got 'xml'"):
        params.parse_format("xml")


def test_the_file_name_keeps_only_safe_characters() -> None:
    body = {"filters": {"channel": "B2B & Co", "date_from": None, "date_to": "2026-01-31"}}
    name = csv_export.file_name(PRODUCTS, body, "2026-02-01T08:00:00Z")
    assert name == (
        "sales-by-product_channel-B2B-Co_start_to_2026-01-31_as-of-2026-02-01T08-00-00Z.csv"
    )
