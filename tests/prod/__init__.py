"""The production profile against real servers: an S3-compatible store and PostgreSQL."""
