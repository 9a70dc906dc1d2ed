"""The CleanUp step: delete superseded runs and state versions that nothing names any more."""
