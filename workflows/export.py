"""Write the state machine's ASL JSON and CloudFormation template for review: export.py DIR."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from workflows.definition import (
    WorkflowConfig,
    build_definition,
    definition_json,
)

ASL_FILE = "orders_etl.asl.json"
CLOUDFORMATION_FILE = "orders_etl.cfn.yaml"


def export(directory: Path, config: WorkflowConfig) -> list[Path]:
    """Write both documents for `config` into `directory`; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    asl_path = directory / ASL_FILE
    asl_path.write_text(definition_json(config) + "\n", encoding="utf-8")
    # The SDK warns on every render that ARNs are region-specific; that is expected here.
    logging.getLogger("stepfunctions").setLevel(logging.ERROR)
    template = build_definition(config).get_cloudformation_template(
        description="Duff Beer orders ETL state machine (example account and region)"
    )
    cfn_path = directory / CLOUDFORMATION_FILE
    cfn_path.write_text(template, encoding="utf-8")
    return [asl_path, cfn_path]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=Path, help="output directory (created if missing)")
    parser.add_argument("--account", default="123456789012", help="example account id")
    parser.add_argument("--region", default="us-east-1", help="example region")
    args = parser.parse_args(argv)
    config = WorkflowConfig.example(account=args.account, region=args.region)
    for path in export(args.directory, config):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
