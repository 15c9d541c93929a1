"""The S3 client, which failures are worth another try, and how failures read for people.

The client comes from the standard AWS configuration: credentials from the default chain
(environment, ``AWS_PROFILE`` and the shared files, SSO, instance or task roles), the region, and the
endpoint (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, or ``endpoint_url`` given explicitly).
Credentials are never read, copied or printed by procos: nothing here touches them, and error
messages carry only the operation, the bucket/key and what the server answered (redacted).

botocore retries each request (``standard`` mode: connection errors, 5xx, throttling; up to
``AWS_MAX_ATTEMPTS`` or the profile's ``max_attempts`` attempts, else 6); on top of
that :func:`retrying` retries a whole unit of work (a part, a ranged GET) with exponential backoff,
because a connection that drops while a response body is being read is not retried by botocore.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from engine.errors import ProcosError, TransportError
from engine.secrets import redact_text

T = TypeVar("T")
BOTO_ATTEMPTS = 6
OWN_ATTEMPTS = 5
BACKOFF_BASE = 0.2
BACKOFF_CAP = 20.0
TRANSIENT_CODES = frozenset({
    "RequestTimeout", "RequestTimeoutException", "Throttling", "ThrottlingException", "SlowDown",
    "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "TooManyRequestsException", "PriorRequestNotComplete",
})


def s3_client(endpoint_url: str | None = None, *, concurrency: int = 8) -> Any:
    """A boto3 S3 client for the standard AWS configuration (``endpoint_url`` overrides the configured endpoint)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    configured = session._session.get_config_variable("max_attempts")  # AWS_MAX_ATTEMPTS or the profile's
    config = Config(
        retries={"max_attempts": int(configured or BOTO_ATTEMPTS), "mode": "standard"},
        connect_timeout=10, read_timeout=60, max_pool_connections=max(10, concurrency + 4),
        # procos computes and sends SHA-256 itself and checks what comes back; no second checksum
        request_checksum_calculation="when_required", response_checksum_validation="when_required",
    )
    try:
        client = session.client("s3", endpoint_url=endpoint_url or None, config=config)
    except Exception as exc:  # botocore raises its own types for profiles, regions and endpoints
        raise TransportError(f"cannot set up the S3 client: {_describe(exc)}",
                             hint="check AWS_PROFILE, AWS_REGION and the endpoint URL") from exc
    client.meta.events.register("before-parse.s3.*", refuse_truncated_body)
    return client


def refuse_truncated_body(operation_model: Any, response_dict: dict[str, Any], **_: Any) -> None:
    """Raise IncompleteReadError (transient) for a response body shorter than its Content-Length.

    botocore parses a 200 answer whose connection dropped before the body as an empty document:
    an empty listing that looks like "nothing there". Streaming bodies (GetObject) check their own
    length when read; HEAD answers have no body.
    """
    from botocore.exceptions import IncompleteReadError

    body = response_dict.get("body")
    if not isinstance(body, bytes | bytearray) or operation_model.http.get("method") == "HEAD":
        return
    declared = str((response_dict.get("headers") or {}).get("content-length", ""))
    if declared.isdigit() and int(declared) != len(body):
        raise IncompleteReadError(actual_bytes=len(body), expected_bytes=int(declared))


def is_transient(exc: BaseException) -> bool:
    """Connection resets, timeouts, truncated bodies, 5xx answers and throttling: worth another try."""
    from botocore import exceptions as bex

    if isinstance(exc, bex.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or status == 429 or exc.response.get("Error", {}).get("Code") in TRANSIENT_CODES
    transient: tuple[type[BaseException], ...] = (
        bex.HTTPClientError, bex.ConnectionError, bex.ResponseStreamingError, bex.IncompleteReadError,
        ConnectionError, TimeoutError,
    )
    try:
        from urllib3 import exceptions as u3

        transient += (u3.HTTPError,)
    except ImportError:  # pragma: no cover - urllib3 comes with botocore
        pass
    import http.client

    return isinstance(exc, transient + (http.client.HTTPException,))


def retrying(work: Callable[[], T], *, what: str, attempts: int = OWN_ATTEMPTS,
             progress: Callable[[], int] | None = None) -> T:
    """Run ``work``; on a transient failure wait (exponential backoff with jitter) and run it again.

    With ``progress`` (a counter ``work`` advances, such as bytes received), an attempt that made
    progress does not count against ``attempts``: only failures in a row without progress do.
    Anything else, or the last transient failure, is raised as TransportError saying ``what`` failed;
    a typed error (:class:`~engine.errors.ProcosError`, such as DiskFull) passes through unchanged.
    """
    failures = 0
    mark = progress() if progress else 0
    while True:
        try:
            return work()
        except ProcosError:  # already typed (a changed object, a full disk): not a transport failure to retry
            raise
        except Exception as exc:  # classified below: transient ones retried, the rest reported
            if progress is not None and progress() != mark:
                mark, failures = progress(), 0
            failures += 1
            if not is_transient(exc) or failures >= attempts:
                raise failure(exc, what) from exc
        time.sleep(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1)) * (0.5 + random.random()))


def failure(exc: BaseException, what: str) -> TransportError:
    """A TransportError for people: what failed, the server's answer, and what to do."""
    from botocore import exceptions as bex

    if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError):
        return TransportError(f"{what}: no usable AWS credentials were found",
                              hint="set AWS_PROFILE (shared config), or AWS_ACCESS_KEY_ID and "
                                   "AWS_SECRET_ACCESS_KEY, or run where an instance/task role applies")
    if isinstance(exc, bex.ClientError):
        code = error_code(exc)
        hint = {
            "NoSuchBucket": "create the bucket, or check the bucket name and the endpoint",
            "AccessDenied": "the credentials lack a permission this needs (see the README's IAM list), "
                            "or Object Lock protects the object",
            "InvalidAccessKeyId": "check the AWS credentials and the endpoint",
            "SignatureDoesNotMatch": "check the AWS credentials and the endpoint",
            "InvalidObjectState": "the object is in an archive storage class: restore it first "
                                  "(aws s3api restore-object), then run the command again",
        }.get(code, "run the same command again: finished work is not repeated")
        return TransportError(f"{what}: the server answered {code}: {_describe(exc)}", hint=hint)
    if is_transient(exc):
        return TransportError(f"{what}: the connection kept failing ({_describe(exc)})",
                              hint="check the network and the endpoint, then run the same command again: "
                                   "finished work is not repeated")
    return TransportError(f"{what}: {_describe(exc)}", hint="run with --debug for the traceback")


def error_code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")) or type(exc).__name__


def _describe(exc: BaseException) -> str:
    return redact_text(f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc))[:500]
