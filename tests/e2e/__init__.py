"""End-to-end tests: the Dagster UI in headless Chromium against a real `dagster dev`."""
