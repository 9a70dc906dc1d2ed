"""The PublishState step: register a state version's tables, then publish it by its pointer."""
