"""The reports REST API: API Gateway proxy events in, the current-state reports out as JSON."""
