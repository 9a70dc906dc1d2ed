"""The failure path: quarantine the input object of a failed run with an error report."""
