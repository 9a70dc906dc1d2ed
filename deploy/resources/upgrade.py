"""What earlier releases of the stack deployed and this one replaced: removed on deploy.

Before the state became Iceberg tables (ADR 0045), the stack kept the current state in
version folders named by a versions database, moved views named like today's state tables
forward, and ran two more functions (PlanState, PublishState). A deploy over such a stack
removes them; a view named like a state table must go before the state job creates the
Iceberg table of that name. The old `state/` folders stay in the processed bucket (data is
never deleted by a deploy): delete them by hand once the new state is published.
"""

from __future__ import annotations

from functools import partial

from deploy.core import Change, Clients, Reporter, aws_errors, get_or_none
from deploy.resources import analytics, compute, identity, monitoring
from deploy.stack import StackNames
from duffbeer import state

RETIRED_FUNCTIONS = ("plan_state", "publish_state")
VERSIONS_DATABASE_SUFFIX = "_versions"


def retired_views(clients: Clients, database: str) -> list[str]:
    """The views of `database` named like a state table (the earlier release's state views)."""
    found = []
    for name in (*state.STATE_TABLES, state.PUBLICATIONS_TABLE):
        with aws_errors(f"Glue table {database}.{name}"):
            table = get_or_none(partial(clients.glue.get_table, DatabaseName=database, Name=name))
        if table is not None and table["Table"].get("TableType") == "VIRTUAL_VIEW":
            found.append(name)
    return found


def remove_earlier_release(clients: Clients, reporter: Reporter, names: StackNames) -> None:
    """Delete what only an earlier release created; records only what it deletes."""
    for view in retired_views(clients, names.database):
        with aws_errors(f"Glue view {names.database}.{view}"):
            clients.glue.delete_table(DatabaseName=names.database, Name=view)
        reporter.record("glue view", view, Change.DELETED, "replaced by an Iceberg table")
    versions = f"{names.database}{VERSIONS_DATABASE_SUFFIX}"
    with aws_errors(f"Glue database {versions}"):
        old_database = get_or_none(partial(clients.glue.get_database, Name=versions))
    if old_database is not None:
        analytics.remove_database(clients, reporter, versions)
    lam = getattr(clients, "lambda")
    for key in RETIRED_FUNCTIONS:
        function = names.function(key)
        with aws_errors(f"Lambda function {function}"):
            if get_or_none(partial(lam.get_function, FunctionName=function)) is None:
                continue
        compute.remove_function(clients, reporter, function)
        identity.remove_role(clients, reporter, names.role(key))
        monitoring.remove_log_group(clients, reporter, names.lambda_log_group(key))
        alarm = names.alarm(f"{key.replace('_', '-')}-errors")
        with aws_errors(f"CloudWatch alarm {alarm}"):
            clients.cloudwatch.delete_alarms(AlarmNames=[alarm])
        reporter.record("cloudwatch alarm", alarm, Change.DELETED)
