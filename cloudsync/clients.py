"""boto3 clients tuned for venue WiFi: short connect timeouts, few in-SDK retries (the sync's
own durable retries take over), standard credential chain unless keys are given."""

from __future__ import annotations

import io
from typing import Any

import boto3
from botocore.config import Config

from cloudsync.s3 import INLINE_MAX

READ_TIMEOUT = 90  # seconds; venue WiFi blackouts of 30-60 s must not turn into repeats


def make_clients(
    *,
    region: str,
    s3_endpoint_url: str | None = None,
    rekognition_endpoint_url: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    max_connections: int = 10,
) -> tuple[Any, Any, Any]:
    """(s3, rekognition, probe) clients; the probe is S3 with one attempt and short timeouts,
    for asking "is the uplink back?" without retry storms. ``max_connections``: kept-alive
    connections per client, at least the requests the caller has in flight at once (a request
    beyond the pool opens a new connection: one more round trip)."""
    # No SDK retries at all: a retry botocore makes after a timeout skips our check-before-upload
    # (an S3 object is written twice) and may be a second billed IndexFaces that our ledger never
    # sees. The sync retries itself, after checking what already arrived. The read timeout is
    # longer than a venue blackout, so a stalled request resumes instead of being repeated.
    s3_config = Config(
        region_name=region,
        connect_timeout=5,
        read_timeout=READ_TIMEOUT,
        retries={"total_max_attempts": 1, "mode": "standard"},
        tcp_keepalive=True,
        max_pool_connections=max_connections,
    )
    rekognition_config = s3_config
    session = boto3.session.Session(
        aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key, region_name=region
    )
    s3 = session.client("s3", endpoint_url=s3_endpoint_url, config=s3_config)
    s3.meta.events.register_last("before-call.s3", _send_small_bodies_at_once)
    rekognition = session.client(
        "rekognition", endpoint_url=rekognition_endpoint_url, config=rekognition_config
    )
    probe_config = s3_config.merge(
        Config(connect_timeout=3, read_timeout=5, retries={"total_max_attempts": 1, "mode": "standard"})
    )
    probe = session.client("s3", endpoint_url=s3_endpoint_url, config=probe_config)
    return s3, rekognition, probe


def _send_small_bodies_at_once(params: dict[str, Any], **kwargs: Any) -> None:
    """botocore makes every PUT body file-like and then waits for ``100 Continue`` before sending
    it: one more round trip (300 ms on a venue path) for a proxy that is sent in less. A body
    given as bytes up to ``S3Uploader``'s ``INLINE_MAX`` goes with its headers; a streamed one
    (an original, a part) still asks first."""
    body = params.get("body")
    if isinstance(body, io.BytesIO) and body.getbuffer().nbytes <= INLINE_MAX:
        params.get("headers", {}).pop("Expect", None)
