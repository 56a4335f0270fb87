"""Cloud sync on the box: jobs from the queue, run with cloudsync, results back into the queue."""

from appliance.sync.service import SyncService

__all__ = ["SyncService"]
