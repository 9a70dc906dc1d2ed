"""File-level checks on the header of an orders CSV (pure Python, no Spark)."""

from __future__ import annotations

import pytest

from duffbeer.errors import (
    DelimiterError,
    EmptyFileError,
    EncodingError,
    FileTooLargeError,
    InvalidFileError,
    MissingColumnsError,
)
from glue_jobs.orders.read import HeaderLayout, check_size, parse_header
from glue_jobs.orders.storage import InputFile

HEADER = (
    "client_id,client_name,order_id,product_id,product_description,product_price,"
    "product_ccf,product_volume,point_of_sale_channel,status"
)
ROW = "1001,Moe's Tavern,5678,102,Duff Classic,2.50,6,0.33,Retail,created"


def parse(text: str | bytes) -> HeaderLayout:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return parse_header(data, file_size=len(data), where="orders.csv")


def test_header_in_contract_order_maps_every_column() -> None:
    # Given the sample's header
    # When it is parsed
    layout = parse(f"{HEADER}\n{ROW}\n")
    # Then every field maps onto its contract column, without order_date
    assert layout == HeaderLayout(
        file_columns=tuple(HEADER.split(",")), extra_columns=(), has_order_date=False
    )


def test_bom_crlf_case_spaces_order_and_extra_columns() -> None:
    # Given a BOM, CRLF line ends, upper case and padded names, another order, two extras
    header = (
        "\ufeff STATUS ,Client_ID,client_name,Order_Id,product_id,product_description,"
        'product_price,product_ccf,product_volume,"Point_Of_Sale_Channel",Notes,order_date,x'
    )
    # When it is parsed
    layout = parse(f"{header}\r\n{ROW},a,2026-01-01,b\r\n")
    # Then names are matched case-insensitively, extras get placeholders and are reported
    assert layout == HeaderLayout(
        file_columns=(
            "status",
            "client_id",
            "client_name",
            "order_id",
            "product_id",
            "product_description",
            "product_price",
            "product_ccf",
            "product_volume",
            "point_of_sale_channel",
            "_extra_10",
            "order_date",
            "_extra_12",
        ),
        extra_columns=("Notes", "x"),
        has_order_date=True,
    )


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (b"", EmptyFileError, "orders.csv is empty"),
        (b"\n\n", EmptyFileError, "orders.csv is empty"),
        (f"{HEADER}\n".encode(), EmptyFileError, "orders.csv holds only a header row"),
        (f"{HEADER}\r\n\r\n".encode(), EmptyFileError, "orders.csv holds only a header row"),
        (
            f"{HEADER}\n{ROW}\n".replace("Moe's", "Mo\xe9's").encode("latin-1"),
            EncodingError,
            "orders.csv is not UTF-8 (byte 139: invalid continuation byte)",  # the é
        ),
        (
            f"{HEADER}\n{ROW}\n".replace(",", ";").encode(),
            DelimiterError,
            "orders.csv: the header is delimited by ';', not ','",
        ),
        (
            f"{HEADER}\n{ROW}\n".replace(",", "\t").encode(),
            DelimiterError,
            "orders.csv: the header is delimited by '\\t', not ','",
        ),
        (
            f"{HEADER.replace('status', 'state')}\n{ROW}\n".encode(),
            MissingColumnsError,
            "orders.csv: required columns ['status'] are missing",
        ),
        (
            f"{HEADER},Client_Id\n{ROW},1\n".encode(),
            InvalidFileError,
            "orders.csv: columns ['client_id'] appear more than once in the header",
        ),
    ],
    ids=[
        "empty",
        "blank",
        "header-only",
        "header-and-blank-line",
        "latin-1",
        "semicolon",
        "tab",
        "missing-column",
        "duplicate-column",
    ],
)
def test_file_level_faults_raise_the_matching_error(
    content: bytes, error: type[Exception], message: str
) -> None:
    # Given a faulty file / When its header is checked / Then the named error says why
    with pytest.raises(error) as raised:
        parse(content)
    assert type(raised.value) is error
    assert str(raised.value) == message


def test_character_cut_at_the_end_of_the_sample_is_not_an_encoding_error() -> None:
    # Given a sample that ends in the middle of a two-byte character of a longer file
    data = f"{HEADER}\n1001,Mo\u00e9".encode()
    # When only the sample is checked
    layout = parse_header(data[:-1], file_size=len(data) + 100, where="orders.csv")
    # Then the header is accepted
    assert layout.file_columns == tuple(HEADER.split(","))


def test_size_limit_and_missing_input() -> None:
    # Given inputs above the limit, within it, and none at all
    files = [InputFile("a.csv", 60), InputFile("b.csv", 50)]
    # Then the total is checked against the limit
    assert check_size(files, max_bytes=110, where="in/") == 110
    with pytest.raises(FileTooLargeError, match="in/ is 110 bytes, more than the limit of 100"):
        check_size(files, max_bytes=100, where="in/")
    with pytest.raises(EmptyFileError, match="in/: no input file found"):
        check_size([], max_bytes=100, where="in/")
