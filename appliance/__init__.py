"""shutterbox appliance: the box's daemon (FTP ingest, durable queue, admin API) and its CLI."""

__version__ = "0.1.0"
