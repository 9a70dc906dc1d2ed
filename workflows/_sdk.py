"""The one import point of the Step Functions Data Science SDK, without its logging side effects."""

from __future__ import annotations

import logging
import warnings

# Importing `stepfunctions` sets the ROOT logger to ERROR and pulls in sagemaker, which logs
# its config lookup at INFO and warns about v2/pkg_resources deprecations. Those are the
# SDK's concerns, not ours: quieten them for the import and give the root logger back its
# level so that the caller's logging keeps working.
_root_level = logging.getLogger().level
logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from stepfunctions.steps import (
        Catch,
        Chain,
        Choice,
        ChoiceRule,
        Fail,
        GlueStartJobRunStep,
        Graph,
        LambdaStep,
        Pass,
        Retry,
        SnsPublishStep,
        Succeed,
    )
    from stepfunctions.workflow import Workflow
logging.getLogger().setLevel(_root_level)

__all__ = [
    "Catch",
    "Chain",
    "Choice",
    "ChoiceRule",
    "Fail",
    "GlueStartJobRunStep",
    "Graph",
    "LambdaStep",
    "Pass",
    "Retry",
    "SnsPublishStep",
    "Succeed",
    "Workflow",
]
