"""Test-wide safety: fake AWS credentials and region so no test can ever reach real AWS."""

from __future__ import annotations

import os

# Set at import time so clients built during collection see them too.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_PROFILE", None)
# Deploy sets the Lambdas' metrics namespace; handlers called in-process need it too.
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "DuffBeerOrders")
# A test that needs an endpoint points AWS_ENDPOINT_URL at its own 127.0.0.1 server.
os.environ.pop("AWS_ENDPOINT_URL", None)

