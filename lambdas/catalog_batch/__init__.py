"""The Catalog step: Glue tables, Athena views and the batch's partitions."""
