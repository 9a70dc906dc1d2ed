"""Deploy, diff, re-run or remove the Duff Beer orders stack (create_workflow.py -h)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import boto3
from botocore.exceptions import ProfileNotFound

from deploy.console import execution_request, head_object, upload_order
from deploy.core import Change, Clients, DiffReporter, Reporter, aws_errors
from deploy.orchestrate import data_to_delete, deploy_stack, destroy_stack, diff_stack
from deploy.stack import DEFAULT_BUILD_DIR, DeployOptions, StackArns, StackOutputs
from duffbeer import naming, utc
from duffbeer.errors import ConfigurationError, DeployUsageError, DuffBeerError

EXAMPLE_KEY = "orders.csv"


# Exit statuses (documented in --help and docs/deploy.md).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DATA_KEPT = 3
CONFIRMATION = "destroy"
EPILOG = (
    f"exit status: {EXIT_OK} done; {EXIT_FAILED} failed (or the removal was not confirmed); "
    f"{EXIT_USAGE} usage error; {EXIT_DATA_KEPT} removed, but buckets holding data were kept "
    "(--delete-data deletes them)."
)


COMMANDS = {
    "deploy": "create or update every resource of the stack (idempotent)",
    "diff": "read the account and print what deploy would create, change or leave alone",
    "destroy": "remove the stack (asks first, unless --yes); data buckets are kept unless "
    "--delete-data",
    "start-execution": "start a hand re-run of an object already in the input bucket",
}


# The flags of earlier releases that became commands.
_FLAGS_NOW_COMMANDS = {
    "--dry-run": "diff",
    "--destroy": "destroy",
    "--execution-input": "start-execution KEY",
}


def _stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the stack is and what it is called: every command takes these."""
    parser.add_argument(
        "--stack-name",
        metavar="NAME",
        help="the name every resource starts with: <name>-orders-etl, buckets "
        "<name>-input-orders and <name>-processed-orders, database <name>_reports "
        "(default: duffbeer)",
    )
    parser.add_argument(
        "--prefix",
        default="",
        help="older naming, instead of --stack-name: prepended to every resource name",
    )
    parser.add_argument(
        "--suffix",
        default="",
        help="older naming, instead of --stack-name: appended to every resource name",
    )
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="named profile of the AWS config and credentials files (default: AWS_PROFILE, "
        "else the default credential chain)",
    )
    parser.add_argument(
        "--region",
        metavar="REGION",
        help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION, else the profile's)",
    )
    parser.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="AWS-compatible endpoint for every client (or AWS_ENDPOINT_URL)",
    )
    # --force once emptied the data buckets; in CDK and SAM "force" only skips a prompt.
    parser.add_argument("--force", action="store_true", help=argparse.SUPPRESS)


def _settings_arguments(parser: argparse.ArgumentParser) -> None:
    """What deploy sets up (and diff compares the account with)."""
    parser.add_argument(
        "--log-retention-days",
        type=int,
        default=30,
        metavar="DAYS",
        help="retention of every log group",
    )
    parser.add_argument(
        "--glue-workers", type=int, default=2, metavar="N", help="workers per Glue job run"
    )
    parser.add_argument(
        "--glue-worker-type", default="G.1X", metavar="TYPE", help="Glue worker type"
    )
    parser.add_argument(
        "--athena-bytes-cutoff",
        type=int,
        default=1024**3,
        metavar="BYTES",
        help="BytesScannedCutoffPerQuery of the workgroup (bytes)",
    )
    parser.add_argument(
        "--alert-email",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="subscribe this address to the alerts topic (repeatable; AWS emails a "
        "confirmation link first)",
    )
    parser.add_argument(
        "--build-dir",
        type=Path,
        default=DEFAULT_BUILD_DIR,
        metavar="DIR",
        help="where the Lambda zips, the layer and the Glue libraries are built",
    )


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default where it has one that its help does not already give."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, "", []) or "(default" in text:
            return text
        return str(super()._get_help_string(action))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="create_workflow.py",
        description="Deploy the Duff Beer orders pipeline, compare it with the account, start "
        "a hand re-run, or remove it. `create_workflow.py COMMAND -h` lists a command's options.",
        epilog=EPILOG,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    formatter = _HelpFormatter
    for name, summary in COMMANDS.items():
        command = commands.add_parser(
            name, help=summary, description=summary, epilog=EPILOG, formatter_class=formatter
        )
        _stack_arguments(command)
        if name in {"deploy", "diff"}:
            _settings_arguments(command)
        if name == "deploy":
            command.add_argument(
                "--outputs-file",
                type=Path,
                metavar="FILE",
                help="also write the outputs as JSON here",
            )
        if name == "destroy":
            command.add_argument(
                "--delete-data",
                action="store_true",
                help="also delete the buckets holding data, every object version in them "
                "(says how many objects and bytes first)",
            )
            command.add_argument(
                "--yes", "-y", action="store_true", help="do not ask for confirmation"
            )
        if name == "start-execution":
            command.add_argument("key", metavar="KEY", help="the object's key in the input bucket")
            command.add_argument(
                "--print-only",
                action="store_true",
                help="print the execution's name, input and AWS CLI command; start nothing",
            )
    return parser


@dataclass(frozen=True)
class CliArgs:
    """The command line, parsed and validated once."""

    command: str
    options: DeployOptions
    delete_data: bool = False
    yes: bool = False
    outputs_file: Path | None = None
    key: str | None = None
    print_only: bool = False

    @classmethod
    def from_args(cls, argv: list[str] | None, environ: dict[str, str]) -> CliArgs:
        parser = _parser()
        given = sys.argv[1:] if argv is None else argv
        for flag, command in _FLAGS_NOW_COMMANDS.items():
            if flag in given:
                parser.error(f"{flag} is now a command: create_workflow.py {command} [options]")
        args = parser.parse_args(given)
        if args.force:
            parser.error(
                "--force is gone: it deleted data. With destroy, --delete-data deletes the "
                "buckets holding data and --yes skips the confirmation"
            )
        region = args.region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        if args.profile:
            try:
                region = region or boto3.session.Session(profile_name=args.profile).region_name
            except ProfileNotFound as e:
                parser.error(f"--profile {args.profile}: {e}")
        # Commands without deploy settings take the defaults (they name the same resources).
        defaults = DeployOptions()
        try:
            options = DeployOptions(
                prefix=args.prefix,
                suffix=args.suffix,
                stack_name=args.stack_name,
                region=region or "",
                endpoint_url=args.endpoint_url or environ.get("AWS_ENDPOINT_URL") or None,
                profile=args.profile,
                log_retention_days=getattr(args, "log_retention_days", defaults.log_retention_days),
                glue_workers=getattr(args, "glue_workers", defaults.glue_workers),
                glue_worker_type=getattr(args, "glue_worker_type", defaults.glue_worker_type),
                athena_bytes_scanned_cutoff=getattr(
                    args, "athena_bytes_cutoff", defaults.athena_bytes_scanned_cutoff
                ),
                alert_emails=tuple(getattr(args, "alert_email", ())),
                build_dir=getattr(args, "build_dir", defaults.build_dir),
            )
        except ConfigurationError as e:
            # Names, sizes and addresses the options refuse are usage errors (exit 2).
            parser.error(str(e))
        return cls(
            command=args.command,
            options=options,
            delete_data=getattr(args, "delete_data", False),
            yes=getattr(args, "yes", False),
            outputs_file=getattr(args, "outputs_file", None),
            key=getattr(args, "key", None),
            print_only=getattr(args, "print_only", False),
        )


def deploy(options: DeployOptions, out: TextIO | None = None) -> StackOutputs:
    """Deploy (or update) the stack described by `options`; the local runtime calls this."""
    reporter = Reporter(out or sys.stdout)
    outputs = deploy_stack(options, reporter)
    _print_summary(reporter)
    return outputs


def diff(options: DeployOptions, out: TextIO | None = None) -> Reporter:
    """Print what `deploy` would create, change or leave alone in the account; change nothing."""
    reporter = DiffReporter(out or sys.stdout)
    print(
        f"Comparing the stack with {options.endpoint_url or 'AWS'} ({options.region}); "
        "nothing is changed",
        file=reporter.out,
    )
    diff_stack(options, reporter)
    counts = {change: reporter.count(change) for change in Change}
    print(
        f"diff: {counts[Change.CREATED]} to create, {counts[Change.UPDATED]} to update, "
        f"{counts[Change.DELETED]} to delete, {counts[Change.UNCHANGED]} unchanged",
        file=reporter.out,
    )
    return reporter


def destroy(options: DeployOptions, *, delete_data: bool, out: TextIO | None = None) -> bool:
    """Remove the stack; True when nothing is left behind."""
    reporter = Reporter(out or sys.stdout)
    gone = destroy_stack(options, reporter, delete_data=delete_data)
    print(
        f"destroy: {reporter.count(Change.DELETED)} deleted, "
        f"{reporter.count(Change.ABSENT)} already absent, {reporter.count(Change.KEPT)} kept",
        file=reporter.out,
    )
    return gone


def _print_summary(reporter: Reporter) -> None:
    counts = {change: reporter.count(change) for change in (Change.CREATED, Change.UPDATED)}
    if not any(counts.values()):
        print("deploy: unchanged (every resource already up to date)", file=reporter.out)
    else:
        print(
            f"deploy: {counts[Change.CREATED]} created, {counts[Change.UPDATED]} updated, "
            f"{reporter.count(Change.UNCHANGED)} unchanged",
            file=reporter.out,
        )


def console_execution_input(
    input_bucket: str, key: str = EXAMPLE_KEY
) -> tuple[str, dict[str, object]]:
    """The shape of the execution name and input that re-run an uploaded object by hand."""
    batch_id = naming.batch_id_for(input_bucket, key)
    document: dict[str, object] = {
        "bucket": input_bucket,
        "key": key,
        "etag": "<ETag of the object, without quotes>",
        "version_id": "<VersionId of the object (the input bucket is versioned)>",
        "size": "<ContentLength of the object>",
        "event_time": "<the automatic run's event_time: when the object was uploaded>",
        "batch_id": batch_id,
        "sequencer": "<the automatic run's sequencer>",
        "rerun_at": "<now, e.g. 2026-11-28T08:00:00.000Z>",
    }
    return f"{batch_id}-manual-<UTC time>-<random token>", document


def print_outputs(outputs: StackOutputs, out: TextIO) -> None:
    name, document = console_execution_input(outputs.input_bucket)
    lines = [
        "",
        "Outputs",
        *(
            f"  {key:<18} {value}"
            for key, value in outputs.to_dict().items()
            if key != "function_arns"
        ),
        *(f"  function {key:<9} {arn}" for key, arn in outputs.function_arns.items()),
        "",
        "Try it",
        f"  aws s3 cp data/sample/orders.csv s3://{outputs.input_bucket}/{EXAMPLE_KEY}",
        f"  aws apigateway get-api-key --api-key {outputs.api_key_id} --include-value",
        f"  curl -H 'x-api-key: <value>' {outputs.api_url}/sales-by-product",
        "",
        "Start an execution by hand (Step Functions console > the state machine > Start execution)",
        "  or `python deploy/create_workflow.py start-execution <key>` starts it for an object",
        "  already uploaded (--print-only: print its name and input); their shape is:",
        f"  name:  {name}",
        *(f"    {line}" for line in json.dumps(document, indent=2).splitlines()),
    ]
    print("\n".join(lines), file=out)


def start_execution(options: DeployOptions, key: str, out: TextIO, *, start: bool) -> None:
    """Name, input and CLI command of a hand re-run of an object in the input bucket; with
    `start`, also start it."""
    names = options.names()
    clients = Clients(options.region, options.endpoint_url, options.profile)
    with aws_errors("STS GetCallerIdentity (credentials)"):
        account = str(clients.sts.get_caller_identity()["Account"])
    arns = StackArns(names, account, options.region)
    head = head_object(clients, names.input_bucket, key)
    order = upload_order(clients, names, arns, key, head)
    request = execution_request(names.input_bucket, key, head, order, utc.now())
    text = json.dumps(request.document, indent=2)
    print(
        f"State machine: {arns.state_machine}\nName: {request.name}\n"
        f"Upload order from: {order.source}\nInput:\n{text}\n",
        file=out,
    )
    if not start:
        print(
            "Or: aws stepfunctions start-execution --state-machine-arn "
            f"{arns.state_machine} --name {request.name} --input '{json.dumps(request.document)}'",
            file=out,
        )
        return
    with aws_errors(f"Step Functions StartExecution {request.name}"):
        started = clients.stepfunctions.start_execution(
            stateMachineArn=arns.state_machine,
            name=request.name,
            input=json.dumps(request.document),
        )
    print(f"Started: {started['executionArn']}", file=out)


def confirm_destroy(cli: CliArgs, out: TextIO, answers: TextIO) -> bool:
    """Say what destroy removes (and, with --delete-data, how much data), then ask, unless
    --yes. Only a typed `destroy` confirms."""
    names = cli.options.names()
    target = cli.options.endpoint_url or "AWS"
    print(
        f"This removes the stack {names.state_machine} and every resource of it from "
        f"{target} ({cli.options.region}).",
        file=out,
    )
    if cli.delete_data:
        for held in data_to_delete(cli.options):
            print(
                f"  --delete-data deletes {held.versions} object versions "
                f"({held.size_bytes} bytes) from s3://{held.bucket}",
                file=out,
            )
    else:
        print("  Buckets holding data are kept (--delete-data deletes them).", file=out)
    if cli.yes:
        return True
    if not answers.isatty():
        raise DeployUsageError("destroy asks for confirmation: give --yes when not at a terminal")
    print(f"Type '{CONFIRMATION}' to remove it: ", end="", file=out, flush=True)
    return answers.readline().strip() == CONFIRMATION


def _destroy_command(cli: CliArgs, out: TextIO, answers: TextIO) -> int:
    if not confirm_destroy(cli, out, answers):
        print("Not confirmed: nothing removed.", file=out)
        return EXIT_FAILED
    print(
        f"Removing the stack from {cli.options.endpoint_url or 'AWS'} ({cli.options.region})",
        file=out,
    )
    gone = destroy(cli.options, delete_data=cli.delete_data, out=out)
    return EXIT_OK if gone else EXIT_DATA_KEPT


def _deploy_command(cli: CliArgs, out: TextIO) -> int:
    print(
        f"Deploying the stack to {cli.options.endpoint_url or 'AWS'} ({cli.options.region})",
        file=out,
    )
    outputs = deploy(cli.options, out=out)
    print_outputs(outputs, out)
    if cli.outputs_file:
        cli.outputs_file.parent.mkdir(parents=True, exist_ok=True)
        cli.outputs_file.write_text(json.dumps(outputs.to_dict(), indent=2) + "\n")
    return EXIT_OK


def main(argv: list[str] | None = None, answers: TextIO | None = None) -> int:
    out = sys.stdout
    try:
        cli = CliArgs.from_args(argv, dict(os.environ))
        if cli.command == "diff":
            diff(cli.options, out=out)
            return EXIT_OK
        if cli.command == "start-execution":
            start_execution(cli.options, str(cli.key), out, start=not cli.print_only)
            return EXIT_OK
        if cli.command == "destroy":
            return _destroy_command(cli, out, answers or sys.stdin)
        return _deploy_command(cli, out)
    except DeployUsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except DuffBeerError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
