"""One module per AWS service: idempotent ensure_* and remove_* functions for the stack."""
