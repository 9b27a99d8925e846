"""The user's side: a web console listing, creating, opening, pausing and resuming notebooks,
and the gateway serving each notebook's Jupyter under its `status.url` path. One aiohttp
process (`server.py`); see docs/console.md."""
