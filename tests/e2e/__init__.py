"""End-to-end tests in a real Chromium against the portal served by uvicorn."""
