"""The Validate step: file-level checks of the orders contract on a streamed sample."""
