"""The API benchmark's own parts, without Spark: the Athena scan it reports over a small Iceberg
state written with pyiceberg into a moto Glue catalog (the byte counts checked against the
Parquet metadata of files chosen by hand), the target space, the percentile, the reuse of a
built history, and the HTTP front with its load generator."""

from __future__ import annotations

import argparse
import json
import queue
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.expressions.parser import parse
from pyiceberg.io.pyarrow import (
    PyArrowFileIO,
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
    schema_to_pyarrow,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.table import FileScanTask, Table
from pyiceberg.transforms import BucketTransform, MonthTransform
from pyiceberg.typedef import Record
from pyiceberg.utils.datetime import date_to_days

from bench import bench_api
from duffbeer import reports_sql, state
from lambdas.api.queries import ReportService
from tests.unit.test_api_support import (
    D10,
    D11,
    D12,
    SPANNING_ROWS,
    V1_ROWS,
    V2_ROWS,
    arrow_table,
    reference_states,
)

pytestmark = pytest.mark.functional

DATABASE = "bench_api_tests"
REGION = "us-east-1"
# A client of no publication: only in a snapshot written after the last one.
UNPUBLISHED_CLIENT = 1999


@dataclass(frozen=True)
class WrittenState:
    """The Iceberg state as written: the catalog, the latest publication, and the data files
    of each table at that publication (as the fixture wrote them, not as planned)."""

    catalog: Catalog
    publication: state.Publication
    files: Mapping[str, Sequence[Path]]


def _partition_field(definition: str) -> tuple[str, Any, str]:
    """A StateTable partition definition as (source column, pyiceberg transform, field name
    as Spark names it)."""
    if definition.startswith("bucket("):
        count, column = definition[len("bucket(") : -1].split(",")
        return column.strip(), BucketTransform(int(count)), f"{column.strip()}_bucket"
    assert definition.startswith("months("), definition
    column = definition[len("months(") : -1]
    return column, MonthTransform(), f"{column}_month"


def create_table(catalog: Catalog, warehouse: Path, name: str) -> Table:
    """The table with its columns and its partition spec, on local disk."""
    definition = state.STATE_TABLES[name]
    table = catalog.create_table(
        f"{DATABASE}.{name}",
        schema=arrow_table(definition, []).schema,
        location=(warehouse / name).as_uri(),
    )
    if definition.partitioned_by:
        with table.update_spec() as spec:
            for partition in definition.partitioned_by:
                spec.add_field(*_partition_field(partition))
    return catalog.load_table(f"{DATABASE}.{name}")


def partition_of(table: Table, row: Mapping[str, Any]) -> tuple[Any, ...]:
    """The row's partition values under the table's spec."""
    values = []
    for field in table.spec().fields:
        source = table.schema().find_field(field.source_id)
        value = row[source.name]
        if isinstance(value, date):
            value = date_to_days(value)
        values.append(field.transform.transform(source.field_type)(value))
    return tuple(values)


def write_files(table: Table, name: str, rows: pa.Table, directory: Path) -> list[DataFile]:
    """The rows as Parquet files, one per partition (and per channel, for the tables not
    bucketed by client: their files then have one channel each), described for a commit."""
    schema = schema_to_pyarrow(table.schema())
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    by_client = name in (state.CLIENT_REPORT_TABLE, state.CLIENT_ORDERS_TABLE)
    for index, row in enumerate(rows.to_pylist()):
        channel = None if by_client else row["point_of_sale_channel"]
        groups[(*partition_of(table, row), channel)].append(index)
    files = []
    directory.mkdir(parents=True, exist_ok=True)
    for number, indices in enumerate(groups.values()):
        path = directory / f"{name}-{number}.parquet"
        pq.write_table(rows.take(indices).cast(schema), path)
        metadata = pq.read_metadata(path)
        statistics = data_file_statistics_from_parquet_metadata(
            parquet_metadata=metadata,
            stats_columns=compute_statistics_plan(table.schema(), table.metadata.properties),
            parquet_column_mapping=parquet_path_to_id_mapping(table.schema()),
        )
        described = DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=path.as_uri(),
            file_format=FileFormat.PARQUET,
            partition=Record(*partition_of(table, rows.take(indices[:1]).to_pylist()[0])),
            file_size_in_bytes=path.stat().st_size,
            sort_order_id=None,
            equality_ids=None,
            key_metadata=None,
            **statistics.to_serialized_dict(),
        )
        # A file read from a manifest carries its spec; one written here is given it.
        described.spec_id = table.metadata.default_spec_id
        files.append(described)
    return files


def replace_files(table: Table, removed: Sequence[DataFile], added: Sequence[DataFile]) -> int:
    """One commit replacing the table's files; its snapshot id."""
    with table.transaction() as transaction, transaction.update_snapshot().overwrite() as files:
        for data_file in removed:
            files.delete_data_file(data_file)
        for data_file in added:
            files.append_data_file(data_file)
    snapshot = table.refresh().current_snapshot()
    assert snapshot is not None
    return snapshot.snapshot_id


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def written(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> WrittenState:
    """Publications 1 (V1 rows) and 2 (V2 rows, spanning cells added) of the API's tables,
    then a client_report snapshot that no publication names (a merge's own, unpublished)."""
    warehouse = tmp_path_factory.mktemp("warehouse")
    glue = boto3.client("glue", endpoint_url=moto_endpoint, region_name=REGION)
    glue.create_database(DatabaseInput={"Name": DATABASE})
    catalog = load_catalog(
        "bench-api-tests",
        type="glue",
        **{"glue.endpoint": moto_endpoint, "glue.region": REGION},
    )
    tables = {name: create_table(catalog, warehouse, name) for name in reports_sql.API_TABLES}
    publications = catalog.create_table(
        f"{DATABASE}.{state.PUBLICATIONS_TABLE}",
        schema=pa.schema([("seq", pa.int64())]),
        location=(warehouse / state.PUBLICATIONS_TABLE).as_uri(),
    )
    v2_rows = {
        **V2_ROWS,
        state.SPANNING_ORDER_CELLS_TABLE: SPANNING_ROWS[state.SPANNING_ORDER_CELLS_TABLE],
    }
    current: dict[str, list[DataFile]] = {name: [] for name in tables}
    for seq, rows in enumerate((V1_ROWS, v2_rows), start=1):
        snapshots = {}
        for name, table in tables.items():
            data = arrow_table(state.STATE_TABLES[name], rows[name])
            added = write_files(table, name, data, warehouse / "written" / f"p{seq}")
            snapshots[name] = replace_files(table, current[name], added)
            current[name] = added
        publication = state.Publication(
            seq=seq, published_at=datetime.now(UTC), kind=state.KIND_MERGE, snapshots=snapshots
        )
        publications.append(
            pa.table({"seq": pa.array([seq], pa.int64())}),
            snapshot_properties=publication.summary(),
        )
    # A later snapshot of client_report that no publication names.
    client_report = tables[state.CLIENT_REPORT_TABLE]
    stray = arrow_table(
        state.STATE_TABLES[state.CLIENT_REPORT_TABLE],
        [(UNPUBLISHED_CLIENT, *V2_ROWS[state.CLIENT_REPORT_TABLE][0][1:])],
    )
    replace_files(
        client_report, [], write_files(client_report, "client_report", stray, warehouse / "stray")
    )
    published = bench_api.catalog_publications(catalog, DATABASE)
    assert [p.seq for p in published] == [1, 2]
    files = {
        name: [Path(f.file_path.removeprefix("file://")) for f in current[name]] for name in tables
    }
    return WrittenState(catalog, published[-1], files)


# --- Independent counts: Parquet metadata of files chosen by hand ------------------------------


def column_bytes(paths: Sequence[Path], columns: set[str]) -> int:
    """Compressed bytes of the named columns' chunks in the files."""
    total = 0
    for path in paths:
        metadata = pq.read_metadata(path)
        for g in range(metadata.num_row_groups):
            for c in range(metadata.num_columns):
                chunk = metadata.row_group(g).column(c)
                total += chunk.total_compressed_size if chunk.path_in_schema in columns else 0
    return total


def holding(paths: Sequence[Path], column: str, low: Any, high: Any) -> list[Path]:
    """The files whose values of the column (nulls aside) span part of [low, high]: those
    Iceberg keeps by their min/max statistics."""
    kept = []
    for path in paths:
        values = pq.read_table(path, columns=[column])[column].drop_null()
        if len(values) and pc.min(values).as_py() <= high and pc.max(values).as_py() >= low:
            kept.append(path)
    return kept


CLIENT_REPORT_READ = {c for c, _ in state.STATE_TABLES[state.CLIENT_REPORT_TABLE].columns}
CLIENT_ORDERS_READ = {
    "client_id",
    "order_id",
    "order_date",
    "point_of_sale_channel",
    "lines",
    "units",
    "total_sales",
    "created_lines",
    "delivered_lines",
    "broken_lines",
}  # not client_name nor the latest_* columns
PRODUCT_DAILY_ALL = {c for c, _ in state.STATE_TABLES[state.PRODUCT_DAILY_TABLE].columns}
STATUS_DAILY_ALL = {c for c, _ in state.STATE_TABLES[state.STATUS_DAILY_TABLE].columns}
SPANNING_ALL = {c for c, _ in state.STATE_TABLES[state.SPANNING_ORDER_CELLS_TABLE].columns}
# top-clients joins client_report to itself: the ranked side `c` and the name side `t`.
TOP_CLIENTS_C = {
    "client_id",
    "orders",
    "lines",
    "units",
    "total_sales",
    "all_statuses",
    "all_channels",
}
TOP_CLIENTS_T = {"client_id", "client_name", "all_statuses", "all_channels"}
CELL = {"point_of_sale_channel", "order_date"}
ORDER_CELLS_READ = {"client_id", "order_id", "lines", "units", "total_sales", *CELL}


def test_scan_counts_the_columns_read_in_the_files_iceberg_plans(written: WrittenState) -> None:
    # Given publication 2 (a later client_report snapshot is not published), and a request
    # for client 1001, and one with channel Retail from 01-10 to 01-11
    files = written.files
    one_client = bench_api.ScanTarget(1001)
    filtered = bench_api.ScanTarget(1001, "Retail", D10, D11)
    # When the bytes per route are measured for each
    measured = {
        target: bench_api.athena_scan_bytes(
            written.catalog, DATABASE, written.publication, [target]
        )
        for target in (one_client, filtered)
    }
    # Then a client route reads the files holding the client (its bucket's)
    report_files = files[state.CLIENT_REPORT_TABLE]
    client_report = holding(report_files, "client_id", 1001, 1001)
    client_orders = holding(files[state.CLIENT_ORDERS_TABLE], "client_id", 1001, 1001)
    orders = column_bytes(client_report, CLIENT_REPORT_READ)
    orders_list = orders + column_bytes(client_orders, CLIENT_ORDERS_READ)

    def cells(table: str) -> list[Path]:
        retail = holding(files[table], "point_of_sale_channel", "Retail", "Retail")
        return holding(retail, "order_date", D10, D11)

    # And a filtered report reads the files of its channel and days, the filter's columns too
    assert measured[filtered] == {
        "orders": orders,
        "orders+list": orders_list,
        "sales-by-product": column_bytes(cells(state.PRODUCT_DAILY_TABLE), PRODUCT_DAILY_ALL),
        "order-status-report": column_bytes(cells(state.STATUS_DAILY_TABLE), STATUS_DAILY_ALL)
        + column_bytes(cells(state.SPANNING_ORDER_CELLS_TABLE), SPANNING_ALL),
        "daily-sales": column_bytes(
            cells(state.PRODUCT_DAILY_TABLE), {"order_date", "units", "total_sales", *CELL}
        ),
        # With dates, the client_order_cells rows of the channel and days
        "top-clients": column_bytes(cells(state.CLIENT_ORDER_CELLS_TABLE), ORDER_CELLS_READ)
        + column_bytes(report_files, TOP_CLIENTS_T),
    }
    # And an unfiltered one reads every file of the publication, without the cell columns
    # it does not name
    product_daily = files[state.PRODUCT_DAILY_TABLE]
    assert measured[one_client] == {
        "orders": orders,
        "orders+list": orders_list,
        "sales-by-product": column_bytes(product_daily, PRODUCT_DAILY_ALL - {"order_date"}),
        "order-status-report": column_bytes(
            files[state.STATUS_DAILY_TABLE], STATUS_DAILY_ALL - CELL
        )
        + column_bytes(files[state.SPANNING_ORDER_CELLS_TABLE], SPANNING_ALL - CELL),
        "daily-sales": column_bytes(product_daily, {"order_date", "units", "total_sales"}),
        "top-clients": column_bytes(report_files, TOP_CLIENTS_C)
        + column_bytes(report_files, TOP_CLIENTS_T),
    }
    # And the pruning did leave files out
    assert 0 < len(client_report) < len(report_files)
    assert 0 < len(cells(state.PRODUCT_DAILY_TABLE)) < len(product_daily)


def test_each_table_reference_gets_its_own_columns_and_filters() -> None:
    # When the order status query (two tables, its filter repeated) and top-clients (a
    # self-join) are read
    status_reads = bench_api.table_reads(reports_sql.order_status_query("Retail", D10, D12))
    top_reads = bench_api.table_reads(reports_sql.top_clients_query("Retail", "moe", 10))
    # Then every reference of the status query is filtered on the channel and the days
    cell_filter = parse(
        "point_of_sale_channel = 'Retail' AND order_date >= '2026-01-10' "
        "AND order_date <= '2026-01-12'"
    )
    assert [(r.table, r.row_filter) for r in status_reads] == [
        (state.STATUS_DAILY_TABLE, cell_filter),
        (state.SPANNING_ORDER_CELLS_TABLE, cell_filter),
    ]
    assert status_reads[1].columns == SPANNING_ALL
    # And only the ranked side of top-clients takes the channel filter
    assert [(r.table, r.columns, r.row_filter) for r in top_reads] == [
        (
            state.CLIENT_REPORT_TABLE,
            TOP_CLIENTS_C | {"point_of_sale_channel"},
            parse("point_of_sale_channel = 'Retail'"),
        ),
        (state.CLIENT_REPORT_TABLE, TOP_CLIENTS_T, AlwaysTrue()),
    ]


def test_delete_files_are_counted_whole_once_per_table_read(
    written: WrittenState, tmp_path: Path
) -> None:
    # Given two data files sharing one position delete file (as a merge-on-read table has)
    data = [tmp_path / "data-1.parquet", tmp_path / "data-2.parquet"]
    for number, path in enumerate(data):
        pq.write_table(pa.table({"client_id": [number, 5], "client_name": ["Moe", "Barney"]}), path)
    deletes = tmp_path / "deletes.parquet"
    pq.write_table(
        pa.table({"file_path": [p.as_uri() for p in data], "pos": pa.array([0, 1], pa.int64())}),
        deletes,
    )

    def described(path: Path, content: DataFileContent) -> DataFile:
        return DataFile.from_args(
            content=content,
            file_path=path.as_uri(),
            file_format=FileFormat.PARQUET,
            partition=Record(),
            record_count=2,
            file_size_in_bytes=path.stat().st_size,
        )

    delete_file = described(deletes, DataFileContent.POSITION_DELETES)
    tasks = [
        FileScanTask(described(p, DataFileContent.DATA), delete_files={delete_file}) for p in data
    ]
    meter = bench_api.ScanMeter(written.catalog, DATABASE, written.publication)
    # When the tasks' bytes are counted for one column
    counted = meter.tasks_bytes(PyArrowFileIO(), tasks, frozenset({"client_name"}))
    # Then that column of both files, and the delete file whole, once
    assert counted == column_bytes(data, {"client_name"}) + column_bytes(
        [deletes], {"file_path", "pos"}
    )
    assert column_bytes([deletes], {"file_path", "pos"}) > 0


# --- The load and the histories ------------------------------------------------------------------


def test_target_space_is_the_publications_clients_channels_and_days(
    written: WrittenState,
) -> None:
    # When the load's targets are read from publication 2
    space = bench_api.target_space(written.catalog, DATABASE, written.publication)
    # Then they are its clients (not the unpublished one), channels and days
    statuses = V2_ROWS[state.STATUS_DAILY_TABLE]
    assert space.client_ids == tuple(sorted({r[0] for r in V2_ROWS[state.CLIENT_REPORT_TABLE]}))
    assert UNPUBLISHED_CLIENT not in space.client_ids
    assert space.channels == tuple(sorted({r[1] for r in statuses}))
    assert (space.first_day, space.days) == (D10, 3)
    assert {r[2] for r in statuses} == {D10, D11, D12}


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([float(v) for v in range(1, 101)], 0.99, 99.0),
        ([float(v) for v in range(1, 101)], 0.5, 50.0),
        ([float(v) for v in range(1, 101)], 1.0, 100.0),
        ([float(v) for v in range(1, 101)], 0.0, 1.0),
        ([1.0, 2.0, 3.0, 10.0], 0.99, 10.0),
        ([7.0], 0.99, 7.0),
    ],
)
def test_percentile_is_the_nearest_rank(
    values: list[float], fraction: float, expected: float
) -> None:
    assert bench_api.percentile(values, fraction) == expected


def test_a_built_history_is_reused_from_its_ready_file(tmp_path: Path) -> None:
    # Given a history's directory with its ready file
    root = bench_api.history_root(tmp_path, 3, 500)
    root.mkdir(parents=True)
    (root / "runs").mkdir()
    metadata = {
        name: f"file:/warehouse/{name}/metadata/00003.metadata.json" for name in state.STATE_TABLES
    }
    (root / bench_api.READY).write_text(json.dumps({"current_lines": 1200, "metadata": metadata}))
    # When the bench asks for that history
    history = bench_api.ensure_history(tmp_path, 3, 500, rebuild=False, driver_memory="1g")
    # Then it is the one recorded, nothing rebuilt
    assert history == bench_api.BuiltHistory(root, 3, 500, 1200, metadata)
    assert (root / "runs").is_dir()
    assert history.description == "3 x 500 lines (1,500 line versions, 1,200 current lines)"


def test_histories_are_given_as_batches_x_lines() -> None:
    assert bench_api.parse_histories("10x100000, 2X5") == [(10, 100_000), (2, 5)]
    assert bench_api.parse_histories("") == []
    with pytest.raises(argparse.ArgumentTypeError):
        bench_api.parse_histories("10")


def test_the_front_answers_every_route_over_http_on_localhost() -> None:
    # Given the reference publications behind the HTTP front, and their clients, channels
    # and days as targets
    front = bench_api.ApiFront(ReportService(reference_states().backend(cache_entries=0)))
    front.start()
    space = bench_api.TargetSpace((1001, 1002, 1003, 1004), ("B2B", "Online", "Retail"), D10, 3)
    try:
        for route in bench_api.ROUTES:
            # When two clients load the route briefly
            answers: queue.Queue[tuple[list[float], list[int]]] = queue.Queue()
            bench_api.run_clients(front.port, route, space, 2, 0.2, answers)
            latencies, errors = answers.get_nowait()
            # Then every request was answered 200
            assert latencies, route
            assert errors == [], route
    finally:
        front.stop()
