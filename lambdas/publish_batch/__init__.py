"""The Store step: publish a successful run by a conditional write of the batch pointer."""
