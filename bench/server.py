"""The one moto server of a benchmark run, in its own process (and optionally a latency proxy).

A separate `moto_server` process is faster than an in-process ThreadedMotoServer (client and server
stop sharing one GIL) and lets every contender subprocess talk to the same server. Run directly as
``python -m bench.server --port P`` (used by `MotoProcess`): moto's own CLI, with werkzeug's
per-request log line silenced (it costs time and fills the terminal).
"""

from __future__ import annotations

import argparse
import logging
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from local.moto_server import notify_like_s3, reset_moto, serialize_stream_appends, transactions_like_dynamodb

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
                return
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last_error = exc
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s: {last_error}")


class _Process:
    """A child process started with `python -m <module> ...`, stopped on exit."""

    def __init__(
        self, args: list[str], port: int, log_path: Path | None, ready_path: str = "/moto-api/data.json"
    ) -> None:
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb") if log_path is not None else None
        output = self._log if self._log is not None else subprocess.DEVNULL
        self.process = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        self.port = port
        self.endpoint_url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(f"{self.endpoint_url}{ready_path}")
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class MotoProcess(_Process):
    """`moto_server` on a free local port."""

    def __init__(self, log_path: Path) -> None:
        port = free_port()
        super().__init__(["-m", "bench.server", "--port", str(port)], port, log_path)

    def reset(self) -> None:
        reset_moto(self.endpoint_url)


class LatencyProxyProcess(_Process):
    """bench.latency_proxy in front of `target_url`, adding `latency_ms` to every request."""

    def __init__(self, target_url: str, latency_ms: float, log_path: Path) -> None:
        self.latency_ms = latency_ms
        port = free_port()
        args = ["--target", target_url, "--port", str(port), "--latency-ms", str(latency_ms)]
        super().__init__(["-m", "bench.latency_proxy", *args], port, log_path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto_server with the request log silenced")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    serialize_stream_appends()
    notify_like_s3()
    transactions_like_dynamodb()
    from moto.server import main as moto_main

    moto_main(["--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    main()
