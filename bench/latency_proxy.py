"""A threaded HTTP reverse proxy that adds a fixed delay to every request.

It stands in for the network round trip to a real AWS endpoint (moto on localhost answers in well
under a millisecond of network time). Every request waits `latency_ms` before it is forwarded;
connections are kept alive on both sides (one upstream connection per client connection), so a
client's parallelism is preserved: N concurrent requests each wait the delay, in parallel.

    python -m bench.latency_proxy --target http://127.0.0.1:5000 --port 5001 --latency-ms 10
"""

from __future__ import annotations

import argparse
import http.client
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded as they are.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
_CHUNK = 256 * 1024


def _read_chunked(rfile) -> bytes:
    parts = []
    while True:
        size_line = rfile.readline()
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            # Trailer section ends with an empty line.
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        parts.append(rfile.read(size))
        rfile.readline()


def _upstream(host: str, port: int) -> http.client.HTTPConnection:
    connection = http.client.HTTPConnection(host, port, timeout=300)
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def make_handler(target_host: str, target_port: int, delay_s: float):
    class ProxyHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Small header/body writes must not wait for delayed ACKs (Nagle): that adds ~40 ms a request.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.upstream = _upstream(target_host, target_port)

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                self.upstream.close()

        def log_message(self, format, *args) -> None:
            pass

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return _read_chunked(self.rfile)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _forward(self) -> None:
            body = self._body()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if body or self.command in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = str(len(body))
            time.sleep(delay_s)
            try:
                self.upstream.request(self.command, self.path, body=body, headers=headers)
                response = self.upstream.getresponse()
            except (ConnectionError, http.client.HTTPException):
                # The upstream connection went stale: reconnect once.
                self.upstream.close()
                self.upstream = _upstream(target_host, target_port)
                self.upstream.request(self.command, self.path, body=body, headers=headers)
                response = self.upstream.getresponse()
            length = response.getheader("Content-Length")
            payload = None if length is not None or self.command == "HEAD" else response.read()
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            if payload is not None:
                self.send_header("Content-Length", str(len(payload)))
            elif length is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
            if self.command == "HEAD":
                response.read()
                return
            if payload is not None:
                self.wfile.write(payload)
                return
            while chunk := response.read(_CHUNK):
                self.wfile.write(chunk)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

    return ProxyHandler


class LatencyProxy(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def serve(target: str, port: int, latency_ms: float, host: str = "127.0.0.1") -> LatencyProxy:
    parts = urlsplit(target)
    handler = make_handler(parts.hostname or "127.0.0.1", parts.port or 80, latency_ms / 1000.0)
    return LatencyProxy((host, port), handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="upstream endpoint, e.g. http://127.0.0.1:5000")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency-ms", type=float, default=10.0)
    args = parser.parse_args(argv)
    server = serve(args.target, args.port, args.latency_ms, args.host)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
