"""The lean PutObject path (lambdas/adapters/s3_put.py) against botocore's own requests and behaviour.

Equivalence: the same client sends one object through the lean path and through ``client.put_object``; a
``before-send`` hook (both paths emit it) records what would go on the wire and answers 200 itself. At a frozen
signing time and invocation id the two requests must be identical: method, URL, every header (the SigV4
``Authorization`` included) and body -- except the ``Expect: 100-continue`` the lean path leaves out below 2 MiB.

Behaviour: a local HTTP endpoint answers scripted statuses; whatever is not a 2xx goes to ``client.put_object``,
whose outcome (botocore's retries, its parsed error) is the object's.
"""

from __future__ import annotations

import datetime
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.session import get_session

from lambdas.adapters import clients, s3_put

FROZEN = datetime.datetime(2026, 12, 2, 22, 0, 0, tzinfo=datetime.UTC)
KEYS = [
    "compras/store-1/2026/03/07/insert_B1_20260307_101500_000000000000000000001.json",
    "compras/~2E~2E~2Ftienda~20~C3~B1/2026/12/31/insert_a~2Fb_20261231_235959_2.json",  # our encoded ids
    "a b/ñ/€+x=y&z?#%41.json",  # what botocore percent-encodes
    "dir//double/./dot/../key",  # no path normalisation either way
    "~tilde/UPPER/lower-_.!*'()",
]


def make_client(endpoint_url: str | None = "http://127.0.0.1:9", *, token: str | None = None, **config):
    settings = {"retries": {"mode": "standard", "total_max_attempts": 1}, **config}
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="AKIDLEANTEST",
        aws_secret_access_key="lean-secret",
        aws_session_token=token,
        config=clients._HOT_CONFIG.merge(Config(**settings)),
    )


@pytest.fixture
def frozen(monkeypatch):
    """One signing time and one invocation id for every request."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FROZEN.replace(tzinfo=None))
    fixed = uuid.UUID("12345678-1234-5678-1234-567812345678")
    monkeypatch.setattr(uuid, "uuid4", lambda: fixed)


class Wire:
    """A before-send hook: records every request botocore or the lean path would send, answers 200 itself."""

    def __init__(self, client) -> None:
        self.requests = []
        client.meta.events.register("before-send.s3.PutObject", self.answer)

    def answer(self, request, **_):
        body = request.body
        content = body.read() if hasattr(body, "read") else (body or b"")  # aws-chunked bodies included
        self.requests.append(
            SimpleNamespace(method=request.method, url=request.url, headers=dict(request.headers), body=content)
        )
        return AWSResponse(request.url, 200, {"ETag": '"e"'}, SimpleNamespace(stream=lambda: iter(())))


def lean_and_botocore(client, key, body, content_type="application/json"):
    wire = Wire(client)
    lean = s3_put.LeanPutObject(client)
    lean.put("compras-test-bucket", key, body, content_type=content_type)
    assert lean.lean_puts == 1 and lean.handed_over == 0
    client.put_object(Bucket="compras-test-bucket", Key=key, Body=body, ContentType=content_type)
    ours, theirs = wire.requests
    return ours, theirs


def without_expect(headers):
    return {name: value for name, value in headers.items() if name.lower() != "expect"}


@pytest.mark.parametrize("key", KEYS)
def test_lean_request_is_botocores_request(frozen, key):
    body = '{"compra_id": "B1", "nombre": "Café €"}\n'.encode()
    ours, theirs = lean_and_botocore(make_client(), key, body)
    assert (ours.method, ours.url, ours.body) == (theirs.method, theirs.url, theirs.body)
    assert theirs.headers.pop("Expect") == b"100-continue"  # botocore's; the lean path sends none below 2 MiB
    assert ours.headers == theirs.headers
    assert ours.headers["Authorization"].startswith(b"AWS4-HMAC-SHA256 Credential=AKIDLEANTEST/20261202/us-east-1/s3/")
    assert ours.headers["X-Amz-Content-SHA256"] == theirs.headers["X-Amz-Content-SHA256"]


def test_lean_request_with_session_token_virtual_host_and_checksums_is_botocores(frozen):
    client = make_client(
        "https://s3.us-east-1.amazonaws.com",  # virtual-hosted style, https: nothing is sent (the hook answers)
        token="session-token",
        request_checksum_calculation="when_supported",  # a CRC32 of every body, added by botocore's function
    )
    ours, theirs = lean_and_botocore(client, KEYS[1], b'{"x": 1}\n')
    assert ours.url == theirs.url
    assert ours.url.startswith("https://") and ours.url.endswith(KEYS[1])
    assert without_expect(ours.headers) == without_expect(theirs.headers)
    assert ours.headers["X-Amz-Security-Token"] == theirs.headers["X-Amz-Security-Token"] == b"session-token"
    assert ours.headers["X-Amz-Trailer"] == b"x-amz-checksum-crc32"  # https: botocore sends a trailing checksum
    assert ours.body == theirs.body
    assert b"x-amz-checksum-crc32:" in ours.body


def test_a_large_body_keeps_botocores_expect_header(frozen):
    body = b"x" * s3_put.EXPECT_CONTINUE_MIN_BYTES
    ours, theirs = lean_and_botocore(make_client(), KEYS[0], body)
    assert ours.headers == theirs.headers
    assert ours.headers["Expect"] == b"100-continue"
    assert ours.body == theirs.body


def test_lean_path_signs_with_the_clients_credentials_refreshed_when_due():
    issued = []

    def refresh():
        issued.append(f"AKIDREFRESH{len(issued)}")
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)  # always inside the refresh window
        return {"access_key": issued[-1], "secret_key": "s", "token": "t", "expiry_time": expiry.isoformat()}

    botocore_session = get_session()
    botocore_session._credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    client = boto3.session.Session(botocore_session=botocore_session).client(
        "s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1", config=clients._HOT_CONFIG
    )
    wire = Wire(client)
    lean = s3_put.LeanPutObject(client)
    lean.put("b", "k1", b"1", content_type="application/json")
    lean.put("b", "k2", b"2", content_type="application/json")
    used = [r.headers["Authorization"].split(b"Credential=")[1].split(b"/")[0].decode() for r in wire.requests[-2:]]
    assert used[0] != used[1]  # each request asked the provider: a refreshed key signs the next one
    assert used == issued[-2:]


def test_no_template_when_the_request_depends_on_more_than_the_key():
    """A bucket whose request the template could not reproduce goes through put_object, object by object."""
    client = make_client()
    wire = Wire(client)

    def header_from_the_body(params, **_):  # runs before the probe is captured: the template would repeat it
        params["headers"]["x-amz-meta-size"] = str(len(params["body"].getvalue()))

    client.meta.events.register_first("before-call.s3.PutObject", header_from_the_body)
    lean = s3_put.LeanPutObject(client)
    lean.put("b", "k", b"123", content_type="application/json")
    assert lean.template("b", "application/json") is None
    assert (lean.lean_puts, lean.handed_over) == (0, 1)
    assert wire.requests[-1].headers["x-amz-meta-size"] == b"3"


# -- behaviour against a local endpoint --------------------------------------------------------------


class Endpoint:
    """A local S3-like endpoint answering PUTs with scripted statuses (200 once the script is empty)."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.failing = "/never/"  # PUTs whose path contains it always get 500
        self.seen: list[tuple[str, str | None]] = []  # (path, Expect header) per PUT
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_PUT(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with endpoint.lock:
                    endpoint.seen.append((self.path, self.headers.get("Expect")))
                    status = endpoint.script.pop(0) if endpoint.script else 200
                    status = 500 if endpoint.failing in self.path else status
                code = {403: "AccessDenied", 503: "SlowDown", 500: "InternalError", 400: "BadRequest"}.get(status)
                payload = b"" if code is None else f"<Error><Code>{code}</Code><Message>m</Message></Error>".encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                if status == 200:
                    self.send_header("ETag", '"etag"')
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint(monkeypatch):
    monkeypatch.setattr(s3_put, "first_retry_delay", lambda: 0.0)
    served = Endpoint()
    yield served
    served.close()


def test_success_is_one_request_without_expect(endpoint):
    lean = s3_put.LeanPutObject(make_client(endpoint.url))
    lean.put("bkt", "a/b c.json", b"{}", content_type="application/json")
    assert endpoint.seen == [("/bkt/a/b%20c.json", None)]
    assert (lean.lean_puts, lean.handed_over) == (1, 0)


@pytest.mark.parametrize("status", [500, 503])
def test_a_5xx_or_throttling_answer_is_handed_to_put_object_which_retries(endpoint, status):
    lean = s3_put.LeanPutObject(make_client(endpoint.url))
    endpoint.script = [status]
    lean.put("bkt", "k.json", b"{}", content_type="application/json")  # the hand-over's attempt gets 200
    assert [path for path, _ in endpoint.seen] == ["/bkt/k.json", "/bkt/k.json"]
    assert endpoint.seen[1][1] == "100-continue"  # the second one is botocore's own request
    assert (lean.lean_puts, lean.handed_over) == (0, 1)


def test_botocores_retries_run_after_the_hand_over(endpoint):
    lean = s3_put.LeanPutObject(make_client(endpoint.url, retries={"mode": "standard", "total_max_attempts": 3}))
    endpoint.script = [503, 503, 503]  # the lean attempt, then put_object's first two attempts; its third: 200
    lean.put("bkt", "k.json", b"{}", content_type="application/json")
    assert len(endpoint.seen) == 4


@pytest.mark.parametrize(("status", "code"), [(403, "AccessDenied"), (503, "SlowDown"), (500, "InternalError")])
def test_a_failure_raises_botocores_parsed_error(endpoint, status, code):
    lean = s3_put.LeanPutObject(make_client(endpoint.url))  # one attempt: put_object does not retry
    endpoint.script = [status, status]
    with pytest.raises(ClientError) as raised:
        lean.put("bkt", "k.json", b"{}", content_type="application/json")
    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert len(endpoint.seen) == 2


def test_a_400_drops_the_buckets_template_and_the_next_object_rebuilds_it(endpoint):
    lean = s3_put.LeanPutObject(make_client(endpoint.url))
    lean.put("bkt", "first", b"{}", content_type="application/json")
    built = lean.template("bkt", "application/json")
    endpoint.script = [400]
    lean.put("bkt", "second", b"{}", content_type="application/json")  # handed over; its attempt gets 200
    assert ("bkt", "application/json") not in lean._templates
    lean.put("bkt", "third", b"{}", content_type="application/json")
    assert lean.template("bkt", "application/json") == built
    assert (lean.lean_puts, lean.handed_over) == (2, 1)


def test_no_endpoint_raises_botocores_connection_error():
    lean = s3_put.LeanPutObject(make_client("http://127.0.0.1:9"))  # nothing listens on port 9
    with pytest.raises(EndpointConnectionError):
        lean.put("bkt", "k.json", b"{}", content_type="application/json")
    assert (lean.lean_puts, lean.handed_over) == (0, 1)


def test_a_before_send_hook_sees_both_paths_and_its_error_is_the_objects(endpoint):
    client = make_client(endpoint.url)
    calls = []

    def refuse(request, **_):
        calls.append(request.url)
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "Reduce your request rate"}}, "PutObject")

    client.meta.events.register("before-send.s3.PutObject", refuse)
    lean = s3_put.LeanPutObject(client)
    with pytest.raises(ClientError, match="SlowDown"):
        lean.put("bkt", "k.json", b"{}", content_type="application/json")
    assert len(calls) == 2 and endpoint.seen == []


def test_one_lean_putter_per_client():
    first, second = make_client(), make_client()
    assert s3_put.lean_put_object(first) is s3_put.lean_put_object(first)
    assert s3_put.lean_put_object(first) is not s3_put.lean_put_object(second)


def test_many_threads_share_one_template_and_failures_stay_per_object(endpoint):
    from concurrent.futures import ThreadPoolExecutor

    endpoint.failing = "fail-"
    keys = [f"{'fail' if i % 10 == 3 else 'ok'}-{i:03d}.json" for i in range(60)]
    lean = s3_put.lean_put_object(make_client(endpoint.url))

    def put(key):
        try:
            lean.put("bkt", key, key.encode(), content_type="application/json")
        except ClientError as exc:
            return exc.response["Error"]["Code"]
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcome = dict(zip(keys, pool.map(put, keys), strict=True))
    assert {k for k, v in outcome.items() if v is not None} == {k for k in keys if k.startswith("fail-")}
    assert set(outcome.values()) == {None, "InternalError"}
    assert (lean.lean_puts, lean.handed_over) == (54, 6)
    paths = [path for path, _ in endpoint.seen]
    assert sorted(paths) == sorted([f"/bkt/{k}" for k in keys] + [f"/bkt/{k}" for k in keys if k.startswith("fail-")])


def test_the_lambda_trace_header_is_read_per_request_as_botocore_does(frozen, monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "actualizarComprasStream")
    client = make_client()
    wire = Wire(client)
    lean = s3_put.LeanPutObject(client)
    for trace in ("Root=1-aaaaaaaa-000000000000000000000001", "Root=1-bbbbbbbb-000000000000000000000002"):
        monkeypatch.setenv("_X_AMZN_TRACE_ID", trace)  # Lambda sets it per invocation
        lean.put("b", "k", b"{}", content_type="application/json")
        client.put_object(Bucket="b", Key="k", Body=b"{}", ContentType="application/json")
        ours, theirs = wire.requests[-2:]
        assert ours.headers["X-Amzn-Trace-Id"] == theirs.headers["X-Amzn-Trace-Id"] == trace.encode()
        assert ours.headers == without_expect(theirs.headers)
