"""The API benchmark's own parts over a small hand-made processed root: the Athena scan it
reports, and one short run end to end."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from bench import bench_api
from duffbeer import state
from tests.unit.test_api_support import V1, V1_ROWS, V2, V2_REUSED, V2_ROWS, StateStore

pytestmark = pytest.mark.functional


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Versions 1 and 2 of the reference state under a local root, the pointer on 2."""
    path = tmp_path_factory.mktemp("processed")
    store = StateStore(pafs.LocalFileSystem(), str(path))
    v1 = store.write_version(V1, V1_ROWS)
    v2 = store.write_version(
        V2, V2_ROWS, base=v1, reuse=V2_REUSED, batches=("orders-a", "orders-b")
    )
    store.publish(v2)
    return path


def column_bytes(paths: list[Path], columns: set[str]) -> int:
    total = 0
    for path in paths:
        metadata = pq.ParquetFile(path).metadata
        for g in range(metadata.num_row_groups):
            for c in range(metadata.num_columns):
                chunk = metadata.row_group(g).column(c)
                total += chunk.total_compressed_size if chunk.path_in_schema in columns else 0
    return total


def test_athena_scan_counts_the_columns_read_in_the_files_read(root: Path) -> None:
    # Given version 2: client_bucket partitions 0 and 1 written by it, 2 and 3 reused
    manifest = bench_api.published_manifest(root)
    v2 = root / "state" / "versions" / V2
    v1 = root / "state" / "versions" / V1

    def parts(prefix: Path) -> list[Path]:
        return sorted(prefix.glob("*.parquet"))

    client_report = {c for c, _ in state.STATE_TABLES["client_report"].columns}
    client_orders = {
        "client_id", "order_id", "order_date", "point_of_sale_channel", "lines", "units",
        "total_sales", "created_lines", "delivered_lines", "broken_lines",
    }  # not client_name nor the latest_* columns
    product_daily = {
        "product_id", "point_of_sale_channel", "order_date", "product_description",
        "latest_event_time", "latest_batch_id", "latest_order_id", "orders", "units",
        "total_sales", "total_volume_l",
    }
    status_daily = {c for c, _ in state.STATE_TABLES["status_daily"].columns}
    spanning = {"order_id", "status", "point_of_sale_channel", "order_date"}
    daily = {"order_date", "units", "total_sales", "point_of_sale_channel"}
    top_clients = {
        "client_id", "client_name", "orders", "lines", "units", "total_sales",
        "all_statuses", "all_channels", "point_of_sale_channel",
    }  # not status
    report_partitions = [parts(v2 / "client_report" / f"client_bucket={b}") for b in (0, 1)] + [
        parts(v1 / "client_report" / f"client_bucket={b}") for b in (2, 3)
    ]
    orders_partitions = [parts(v2 / "client_orders" / f"client_bucket={b}") for b in (0, 1)] + [
        parts(v1 / "client_orders" / f"client_bucket={b}") for b in (2, 3)
    ]
    # When the bytes per route are measured
    scanned = bench_api.athena_scan_bytes(root, manifest)
    # Then a client route counts one partition (the largest), the others whole tables
    largest_report = max(column_bytes(p, client_report) for p in report_partitions)
    largest_orders = max(column_bytes(p, client_orders) for p in orders_partitions)
    assert scanned == {
        "orders": largest_report,
        "orders+list": largest_report + largest_orders,
        "sales-by-product": column_bytes(parts(v2 / "product_daily"), product_daily),
        "order-status-report": column_bytes(parts(v2 / "status_daily"), status_daily)
        + column_bytes(parts(v2 / "spanning_order_cells"), spanning),
        "daily-sales": column_bytes(parts(v2 / "product_daily"), daily),
        "top-clients": sum(column_bytes(p, top_clients) for p in report_partitions),
    }
    assert 0 < largest_orders < column_bytes(
        [p for ps in orders_partitions for p in ps], client_orders
    )


def test_a_short_run_over_a_given_root(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # When the bench runs briefly over the root
    code = bench_api.main(
        ["--root", str(root), "--seconds", "0.3", "--clients", "2", "--routes", "orders"]
    )
    out = capsys.readouterr().out
    # Then it served version 2 without errors and printed the scan table
    assert code == 0
    assert f"state version {V2} (2 batches, 6 current lines)" in out
    [row] = [line.split() for line in out.splitlines() if line.strip().startswith("orders ")][:1]
    assert row[4] == "0"  # errors
    assert "order-status-report" in out.split("Athena bytes scanned")[1]
