"""Errors of the cloud sync, classified where boto3's exceptions enter.

::

    CloudError
    ├── TransientError      retry later (network, timeouts, throttling, 5xx)
    │   ├── NetworkError    the uplink itself failed (no answer): maybe offline
    │   └── ThrottledError  the account's rate limit was hit: slow down
    └── PermanentError      retrying the same request cannot help (bad image, access denied,
                            quota, a checksum that does not match)

Runs on whatever thread made the call.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "InternalServerError",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "NoSuchUpload",  # an upload we were resuming was aborted: start it again
    }
)


class CloudError(Exception):
    """Base of the cloud sync's errors; ``code`` is AWS's error code when there is one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientError(CloudError):
    """The request may succeed later; retry with backoff."""


class NetworkError(TransientError):
    """No answer from AWS at all: the uplink is down or flaky."""


class ThrottledError(TransientError):
    """AWS refused for rate: retry, and slow the shared limiter down."""


class PermanentError(CloudError):
    """The request cannot succeed as it is; dead-letter it with this reason."""


def classify(exc: BaseException) -> CloudError:
    """Translate a boto3/botocore exception into our tree (call as ``raise classify(e) from e``)."""
    if isinstance(exc, CloudError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = f"{code}: {error.get('Message', '')}".strip()
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in THROTTLING_CODES or status == 429:
            return ThrottledError(message, code)
        if code in TRANSIENT_CODES or status >= 500:
            return TransientError(message, code)
        return PermanentError(message, code)
    if isinstance(
        exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError
    ):
        return NetworkError(f"network: {exc}")
    if isinstance(exc, BotoCoreError | OSError | TimeoutError):
        return NetworkError(f"{type(exc).__name__}: {exc}")
    return PermanentError(f"{type(exc).__name__}: {exc}")
