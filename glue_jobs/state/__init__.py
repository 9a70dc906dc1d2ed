"""The maintain_state Glue job's steps: merge published batches into a new state version."""
