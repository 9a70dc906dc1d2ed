"""The PlanState step: decide the merge that brings the state up to the published batches."""
