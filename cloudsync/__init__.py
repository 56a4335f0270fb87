"""Cloud sync: S3 uploads and Rekognition calls over a flaky uplink.

Imports nothing of ours (enforced by ruff's banned-import rule for the other direction): the
appliance hands it paths, keys and a journal to persist progress in; it hands back results and
classified errors. Blocking boto3 calls; run on worker threads.
"""
