"""The Store step: verify the atomic publication of a batch and remove superseded runs."""
