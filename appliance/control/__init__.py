"""The admin surface: a FastAPI app on the box's unix control socket, used by the CLI (and later
the console and the cloud backend), plus the HTTP server wrapper. Runs on the asyncio thread."""
