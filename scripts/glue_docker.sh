#!/usr/bin/env bash
# Runs the transform job on the sample in AWS's Glue 5.0 image when a Docker daemon answers,
# else prints the command. CI has no Docker and never runs it (make glue-docker).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -c "from pathlib import Path; from deploy.artifacts import build_glue_libs_zip; build_glue_libs_zip(Path('build'))"
workspace=/home/hadoop/workspace
command=(docker run --rm -v "$PWD":"$workspace"/ --name glue5_spark_submit
  public.ecr.aws/glue/aws-glue-libs:5
  spark-submit --py-files "$workspace"/build/duffbeer_libs.zip
  "$workspace"/glue_jobs/transform_orders.py --JOB_NAME transform_orders
  --input_path "$workspace"/data/sample/orders.csv
  --output_path "$workspace"/build/glue-docker-out
  --batch_id orders-sample --run_id run-1 --ingest_date 2026-11-28)
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  "${command[@]}"
  echo "run manifest: build/glue-docker-out/runs/orders-sample/run-1/_manifest.json"
else
  echo "no Docker daemon here; with Docker, this runs the job in the Glue 5.0 image:"
  printf '%q ' "${command[@]}"
  echo
fi
