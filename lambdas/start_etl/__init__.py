"""The S3 trigger: starts one orders workflow execution per new input object."""
