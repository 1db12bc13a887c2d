"""End-to-end tests: the Dagster UI in headless Chromium against the platform `make run` serves."""
