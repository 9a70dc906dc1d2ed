"""Pure PySpark building blocks of the orders transform job (read, validate, report, write)."""
