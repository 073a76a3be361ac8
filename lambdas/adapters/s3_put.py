"""Lean PutObject: the stream export's many small PUTs without botocore's per-call front end.

Why: one ``client.put_object`` of a 1 KB document costs ~1.2–2.5 ms of client CPU, and a Lambda process is
GIL-bound, so the export of a 100-record batch was CPU-bound long before its 16 PUTs in flight were. Most of that
CPU is the part of the call that does the same thing for every object of a bucket: parameter events, the REST-XML
serializer, the S3 endpoint ruleset, then the retry/response events and the response parser.

What stays botocore's own, per request: the ``before-call`` handlers (the Lambda ``X-Amzn-Trace-Id``, ...), the
request checksum (``apply_request_checksum``), ``Endpoint.create_request`` (its
``request-created`` handlers: the client's own ``RequestSigner`` with the client's credentials provider, refreshed
when due; the retry and user-agent headers), the ``before-send`` handlers (what in-process mocks hook) and the
client's own HTTP session and connection pool (its proxies, TLS settings, timeouts). Only the front end is done
once per bucket: a real ``client.put_object`` of a probe object is stopped at the start of its ``before-call``
(nothing is sent) and its request -- URL, headers, signing context -- becomes the bucket's template; each object
then differs only in its key (encoded with botocore's own ``percent_encode``) and body. Two probes with different
keys and bodies must give the same template, else the bucket gets no template and every object goes through
``client.put_object``.

What happens on anything but a success: a 2xx answer is the only success (PutObject never answers 200 with an
error). Any other status, a connection error or a timeout and the object is handed to ``client.put_object``
unchanged, i.e. to botocore's whole retry policy (standard mode: attempts, backoff, retry quota, region
redirects, clock-skew correction) and error parsing; its outcome is the object's outcome. After a throttling or
5xx answer (or a connection error, a timeout) the hand-over first waits what botocore's standard mode waits
before a second attempt (0-1 s, random), so a struggling bucket is not hit twice at once; the lean attempt is
one extra attempt on top of the client's ``max_attempts``. A redirect or a 400 (a bucket in another region)
drops the bucket's template, so the next object builds it again from what botocore has learned since.

One deliberate difference on the wire: no ``Expect: 100-continue`` below EXPECT_CONTINUE_MIN_BYTES (2 MiB, the
Go v2 and Kotlin SDKs' default threshold; botocore sends it for every PutObject). It is not signed, so the
signature is botocore's either way.

Not run on the lean path: the ``provide-client-params``/``before-parameter-build`` handlers and the client's
parameter validation (the hot client has it off anyway: our keys and bodies are checked by
``lambdas.adapters.s3.put_objects_parallel``), and the response events. A hook that must see every PUT of this
client (a test injecting faults) registers on ``before-send``, which both paths emit.
tests/lambdas/adapters/test_s3_put.py checks the lean request against botocore's own, byte for byte.
"""

from __future__ import annotations

import copy
import io
import logging
import random
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

from botocore.context import get_context, start_as_current_context
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.exceptions import HTTPClientError
from botocore.hooks import first_non_none_response
from botocore.httpchecksum import apply_request_checksum
from botocore.utils import percent_encode

logger = logging.getLogger(__name__)

OPERATION = "PutObject"
# Statuses after which botocore's standard retry mode would back off before the next attempt.
_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Below this size no "Expect: 100-continue" (botocore sends it for every PutObject body): the other AWS SDKs'
# default threshold (Go v2, Kotlin: continueHeaderThresholdBytes = 2 MB). For a small body the handshake only adds a
# round trip and ~27 one-byte socket reads (botocore reads the interim status line unbuffered); it exists to avoid
# sending a large body the server would refuse, and the body of a refused small PUT costs nothing.
EXPECT_CONTINUE_MIN_BYTES = 2 * 1024 * 1024
# Exceptions after which botocore's standard mode would back off too (connection trouble, timeouts).
_TRANSIENT_ERRORS = (HTTPClientError, BotocoreConnectionError)
_ANSWERED_BY_A_HOOK = 0  # a before-call handler answered instead of the service: botocore's path decides
LEAN_ATTEMPTS = 1  # attempts an object gets before put_object's own (total: 1 + the client's total_max_attempts)
_PER_REQUEST_CONTEXT = ("input_params", "s3_redirect", "retries")


def first_retry_delay() -> float:
    """What botocore's standard retry mode waits before a second attempt: rand(0, 1) * 2**0 seconds."""
    return random.random()  # noqa: S311 -- jitter, not a secret (botocore uses random.random too)


class _Captured(Exception):
    def __init__(self, request_dict: dict[str, Any], client_context: Any) -> None:
        super().__init__("PutObject request captured before it was sent")
        self.request_dict = request_dict
        self.client_context = client_context


@dataclass(frozen=True)
class _Template:
    """What a PutObject to one bucket looks like before its key and body: botocore's own request dict."""

    request: dict[str, Any]  # url/url_path/auth_path without the encoded key; headers; method; context; ...
    url: str
    url_path: str
    auth_path: str | None
    content_type: str
    client_context: Any  # botocore's per-call context at before-call (the user-agent feature ids so far)


class LeanPutObject:
    """PutObject through one botocore S3 client: :meth:`put` behaves like ``client.put_object`` (raises what it
    raises) at a fraction of its CPU. Thread-safe; one per client (:func:`lean_put_object`)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._operation = client.meta.service_model.operation_model(OPERATION)
        self._service_id = client.meta.service_model.service_id.hyphenize()
        self._before_call = f"before-call.{self._service_id}.{OPERATION}"
        self._before_send = f"before-send.{self._service_id}.{OPERATION}"
        self._templates: dict[tuple[str, str], _Template | None] = {}
        self._lock = threading.Lock()
        self.lean_puts = 0  # objects written by the lean path
        self.handed_over = 0  # objects handed to client.put_object (no template, or the lean attempt failed)
        self._counts = threading.Lock()

    def put(self, bucket: str, key: str, body: bytes, *, content_type: str) -> None:
        """PUT one object; raises like ``client.put_object`` (after botocore's retries) when it is not written."""
        template = self.template(bucket, content_type)
        if template is not None:
            status = self._lean_attempt(template, bucket, key, body)
            if status is None:
                with self._counts:
                    self.lean_puts += 1
                return
            self._after_failed_attempt(bucket, content_type, status)
        with self._counts:
            self.handed_over += 1
        self._client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    # -- the lean attempt ----------------------------------------------------------------------------

    def _lean_attempt(self, template: _Template, bucket: str, key: str, body: bytes) -> int | Exception | None:
        """None when the object was written; else the HTTP status or the exception of the attempt."""
        try:
            with start_as_current_context(template.client_context):  # as _make_api_call: user-agent feature ids
                return self._send(self.request_dict(template, bucket, key, body), len(body))
        except Exception as exc:  # connection error, timeout, a hook that raised: botocore's path decides
            logger.debug("lean PutObject of s3://%s/%s failed: %r; handing it to put_object", bucket, key, exc)
            return exc

    def request_dict(self, template: _Template, bucket: str, key: str, body: bytes) -> dict[str, Any]:
        """The request dict botocore's front end would have built for this key and body (before ``before-call``)."""
        encoded = percent_encode(key, safe="/~")  # what the REST serializer does with the greedy {Key+} label
        context = {
            name: dict(value) if type(value) is dict else value for name, value in template.request["context"].items()
        }
        file_like = io.BytesIO(body)  # as botocore's convert_body_to_file_like_object does
        context["input_params"] = {"Bucket": bucket, "Key": key}
        redirect = context.get("s3_redirect")
        if redirect is not None:
            redirect["params"] = {"Bucket": bucket, "Key": key, "Body": file_like, "ContentType": template.content_type}
        request = dict(template.request)
        request.update(
            url=template.url + encoded,
            url_path=template.url_path + encoded,
            headers=dict(template.request["headers"]),
            body=file_like,
            context=context,
        )
        if template.auth_path is not None:
            request["auth_path"] = template.auth_path + encoded
        return request

    def _send(self, request: dict[str, Any], size: int) -> int | None:
        client = self._client
        events = client.meta.events
        _, response = events.emit_until_response(
            self._before_call,
            model=self._operation,
            params=request,
            request_signer=client._request_signer,
            context=request["context"],
        )
        if response is not None:
            return _ANSWERED_BY_A_HOOK
        if size < EXPECT_CONTINUE_MIN_BYTES:
            request["headers"].pop("Expect", None)
        apply_request_checksum(request)
        request["context"]["retries"] = {"attempt": 1, "invocation-id": str(uuid.uuid4())}
        endpoint = client._endpoint
        prepared = endpoint.create_request(request, self._operation)  # request-created: signing, retry headers
        http = first_non_none_response(events.emit(self._before_send, request=prepared))
        if http is None:
            http = endpoint.http_session.send(prepared)  # reads the (empty) body: the connection goes back
        status = http.status_code
        return None if 200 <= status < 300 else status

    def _after_failed_attempt(self, bucket: str, content_type: str, status: int | Exception) -> None:
        if isinstance(status, Exception):
            if isinstance(status, _TRANSIENT_ERRORS):
                time.sleep(first_retry_delay())
        elif status in _RETRYABLE_STATUSES:
            time.sleep(first_retry_delay())
        elif 300 <= status <= 400:  # e.g. the bucket lives in another region: rebuild the template
            with self._lock:
                self._templates.pop((bucket, content_type), None)

    # -- templates -----------------------------------------------------------------------------------

    def template(self, bucket: str, content_type: str) -> _Template | None:
        """The bucket's template, built on first use (None: this bucket always goes through put_object)."""
        found = self._templates.get((bucket, content_type), False)
        if found is not False:
            return found
        with self._lock:
            found = self._templates.get((bucket, content_type), False)
            if found is False:
                found = self._templates[(bucket, content_type)] = self._build_template(bucket, content_type)
        return found

    def _build_template(self, bucket: str, content_type: str) -> _Template | None:
        probe = f"lean-put-probe-{uuid.uuid4().hex}/"
        first_key, second_key = probe + "a b+ñ~é=%.json", probe + "x"
        try:
            first = self._capture(bucket, first_key, b"{}", content_type)
            second = self._capture(bucket, second_key, b"0123456789", content_type)
            template = _template_of(*first, first_key, content_type)
            same = _template_of(*second, second_key, content_type)
        except Exception as exc:
            logger.warning("no lean PutObject for bucket %s (every object uses put_object): %s", bucket, exc)
            return None
        if template != same:
            logger.warning("no lean PutObject for bucket %s: its request depends on more than the key", bucket)
            return None
        return template

    def _capture(self, bucket: str, key: str, body: bytes, content_type: str) -> tuple[dict[str, Any], Any]:
        """botocore's request dict of put_object(bucket, key, body) at the start of before-call (nothing is sent)."""

        def capture(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            if context.get("input_params", {}).get("Key") == key:
                raise _Captured(params, copy.deepcopy(get_context()))

        unique = f"lean-put-capture-{uuid.uuid4().hex}"
        events = self._client.meta.events
        events.register_first(self._before_call, capture, unique_id=unique)
        try:
            self._client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        except _Captured as captured:
            return captured.request_dict, captured.client_context
        finally:
            events.unregister(self._before_call, unique_id=unique)
        raise RuntimeError("put_object was not stopped at before-call")


def _template_of(request: dict[str, Any], client_context: Any, key: str, content_type: str) -> _Template:
    """The key-independent part of a captured request dict; raises ValueError when the key is not simply the
    end of its URL, path and signing path, or the request carries what a template must not repeat."""
    encoded = percent_encode(key, safe="/~")
    if request.get("method") != "PUT" or request.get("query_string"):
        raise ValueError(f"unexpected PutObject request: {request.get('method')} query={request.get('query_string')}")
    cut: dict[str, str | None] = {}
    for name in ("url", "url_path", "auth_path"):
        value = request.get(name)
        if value is None and name == "auth_path":
            cut[name] = None
            continue
        if not isinstance(value, str) or not value.endswith(encoded):
            raise ValueError(f"the {name} {value!r} does not end with the encoded key")
        cut[name] = value[: -len(encoded)]
    context = {name: value for name, value in request["context"].items() if name not in _PER_REQUEST_CONTEXT}
    redirect = request["context"].get("s3_redirect")
    if isinstance(redirect, dict):  # the key-independent part of the redirector's note
        context["s3_redirect"] = {name: value for name, value in redirect.items() if name != "params"}
    kept = {name: value for name, value in request.items() if name not in ("body", "context", *cut)}
    kept["context"] = context
    if set(request["headers"]) - {"Content-Type", "User-Agent"}:
        # A header that depends on the body (Content-MD5, a checksum) must come from the per-request handlers.
        raise ValueError(f"unexpected headers before before-call: {sorted(request['headers'])}")
    return _Template(
        request=kept,
        url=cut["url"],
        url_path=cut["url_path"],
        auth_path=cut["auth_path"],
        content_type=content_type,
        client_context=client_context,
    )


_putters: weakref.WeakKeyDictionary[Any, LeanPutObject] = weakref.WeakKeyDictionary()
_putters_lock = threading.Lock()


def lean_put_object(client: Any) -> LeanPutObject:
    """The LeanPutObject of a botocore S3 client (one per client, made on first use, gone with the client)."""
    found = _putters.get(client)
    if found is None:
        with _putters_lock:
            found = _putters.get(client)
            if found is None:
                found = _putters[client] = LeanPutObject(client)
    return found
