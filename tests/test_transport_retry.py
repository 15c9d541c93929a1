"""Which failures the transport retries, and how: botocore's own error types, no server needed."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from engine.errors import TransportError
from engine.transport import client
from engine.transport.client import is_transient, retrying


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "UploadPart")


@pytest.mark.parametrize("exc", [
    client_error("SlowDown", 503), client_error("InternalError", 500), client_error("ThrottlingException", 400),
    client_error("RequestTimeout", 400), ConnectionClosedError(endpoint_url="http://127.0.0.1:9"),
    EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), ConnectionResetError(), TimeoutError(),
])
def test_connection_failures_5xx_and_throttling_are_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [client_error("AccessDenied", 403), client_error("NoSuchBucket", 404), ValueError()])
def test_refusals_are_not_retried(exc):
    assert not is_transient(exc)
    calls = []

    def work():
        calls.append(1)
        raise exc

    with pytest.raises(TransportError):
        retrying(work, what="a test")
    assert len(calls) == 1


def test_transient_failures_are_retried_with_backoff_until_one_succeeds(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(client.time, "sleep", sleeps.append)
    outcomes = [client_error("SlowDown", 503), ConnectionResetError(), "done"]

    def work():
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    assert retrying(work, what="a test") == "done"
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] * 0.3  # exponential backoff with jitter


def test_attempts_that_make_progress_do_not_use_up_the_retries(monkeypatch):
    monkeypatch.setattr(client.time, "sleep", lambda s: None)
    progress = [0]

    def work():
        progress[0] += 1
        if progress[0] < 3 * client.OWN_ATTEMPTS:
            raise ConnectionResetError()
        return progress[0]

    assert retrying(work, what="a test", progress=lambda: progress[0]) == 3 * client.OWN_ATTEMPTS
    with pytest.raises(TransportError, match="the connection kept failing"):
        retrying(lambda: (_ for _ in ()).throw(ConnectionResetError()), what="a test")
