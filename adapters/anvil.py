"""An anvil process on a free loopback port: the local chain and the fork.

The binary comes from the npm package ``@foundry-rs/anvil`` pinned in package.json
(``node_modules/.bin/anvil``); ``ANVIL_BIN`` overrides the path.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters.redact import redact_urls
from policies.errors import ErrorFamily, InvalidInput, Transient

if TYPE_CHECKING:
    from adapters.evm.chain import ChainConnection

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Anvil's default accounts (mnemonic "test test ... junk"): well-known test keys,
# never used outside a local chain.
ANVIL_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcf0cf7c4f6a0",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)


class AnvilError(ErrorFamily):
    """anvil could not be found (``AnvilNotFound``) or failed (``AnvilFailed``)."""


class AnvilNotFound(AnvilError, InvalidInput):
    """The anvil binary is not installed where we look: the operator must install it."""


class AnvilFailed(AnvilError, Transient):
    """anvil did not come up, exited, or answered a call with an error."""


def find_anvil() -> str:
    env = os.environ.get("ANVIL_BIN")
    if env:
        return env
    local = PROJECT_ROOT / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return str(local)
    found = shutil.which("anvil")
    if found:
        return found
    raise AnvilNotFound("anvil not found: run `make bootstrap` (npm ci installs @foundry-rs/anvil)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _connection(url: str, timeout: float) -> ChainConnection:
    """The project's one chain access path (adapters/evm/chain.py) to this anvil: a local
    process with no provider quota, so no practical rate limit."""
    from adapters.evm.chain import ChainConnection

    return ChainConnection([url], timeout=timeout, rate_limit=1_000_000)


def _rpc(url: str, method: str, params: list[object] | None = None, timeout: float = 2.0) -> object:
    from adapters.evm.rpc import RpcError

    try:
        return _connection(url, timeout).rpc(method, list(params or []))
    except RpcError as exc:
        raise AnvilFailed(f"{method}: {exc.error}") from None


class _ForkRelay:
    """A loopback HTTP relay: POST bodies go to the upstream URL, answers come back.

    Written by hand (a few lines of the standard library) because no proxy library is
    needed for one upstream and JSON-RPC over POST; the upstream URL, with whatever
    key or user:password it carries, stays in this process's memory.
    """

    def __init__(self, upstream: str, timeout: float = 60.0, fallbacks: tuple[str, ...] = ()) -> None:
        # (url, headers) per upstream, tried in order: a transport failure or an HTTP
        # 429/5xx moves to the next, like the rest of the project's chain access
        self._upstreams = [self._split(u) for u in (upstream, *fallbacks)]
        self._timeout = timeout
        self._server: ThreadingHTTPServer | None = None

    @staticmethod
    def _split(upstream: str) -> tuple[str, dict[str, str]]:
        """The URL without userinfo, and headers carrying it as basic auth."""
        parts = urllib.parse.urlsplit(upstream)
        headers = {"Content-Type": "application/json"}
        if parts.username is not None:
            cred = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
            netloc = parts.hostname or ""
            if parts.port:
                netloc += f":{parts.port}"
            upstream = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        return upstream, headers

    def forward(self, body: bytes) -> tuple[int, bytes]:
        status, answer = 502, b"no upstream"
        for url, headers in self._upstreams:
            req = urllib.request.Request(url, data=body, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self._timeout) as resp:
                    return resp.status, resp.read()
            except urllib.error.HTTPError as exc:
                status, answer = exc.code, exc.read()
                if exc.code != 429 and exc.code < 500:
                    return status, answer
            except OSError as exc:
                status, answer = 502, redact_urls(str(exc)).encode()
        return status, answer

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> _ForkRelay:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = relay.forward(body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # anvil went away (stopped or reset) while we answered

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: anvil's requests are not ours to log

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class Anvil:
    """A running anvil. Use as a context manager or call ``stop()``."""

    chain_id: int = 31337
    fork_url: str | None = None
    fork_fallbacks: tuple[str, ...] = ()  # more URLs of the same chain, tried in order
    code_size_limit: bool = False  # Zodiac Roles exceeds 24 KiB: pass True to lift the limit
    extra_args: list[str] = field(default_factory=list)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _relay: _ForkRelay | None = field(default=None, repr=False)
    _conn: ChainConnection | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Anvil:
        binary = find_anvil()
        self.port = self.port or free_port()
        args = [
            binary,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--silent",
            # room for many queued transactions in one block (devchain.mint_many)
            "--gas-limit", "1000000000000",
        ]
        if self.fork_url:
            # The fork URL may carry an API key. anvil takes it only on its command line
            # (anvil 1.7 does not read ETH_RPC_URL), which every local user can read in
            # /proc/<pid>/cmdline; so anvil forks from a loopback relay of ours that holds
            # the real URL in memory.
            self._relay = _ForkRelay(self.fork_url, fallbacks=self.fork_fallbacks).start()
            args += ["--fork-url", self._relay.url]
        if self.code_size_limit:
            args += ["--disable-code-size-limit"]
        args += self.extra_args
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        from adapters.evm.rpc import RpcUnavailable

        probe = _connection(self.url, 0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (self.process.stderr.read() if self.process.stderr else b"").decode()
                code = self.process.returncode
                self.stop()
                raise AnvilFailed(f"anvil exited with {code}: {redact_urls(err.strip())[:300]}")
            try:
                probe.rpc("eth_chainId")
                self._conn = _connection(self.url, 120.0)
                return self
            except (OSError, RpcUnavailable, AnvilError):
                time.sleep(0.05)
        self.stop()
        raise AnvilFailed(f"anvil did not answer on {self.url} within {timeout:.0f}s")

    def rpc(self, method: str, params: list[object] | None = None) -> object:
        from adapters.evm.rpc import RpcError

        try:
            return self.connection.rpc(method, list(params or []))
        except RpcError as exc:
            raise AnvilFailed(f"{method}: {exc.error}") from None

    def rpc_batch(self, calls: list[tuple[str, list[object]]]) -> list[Any]:
        """Several calls in one HTTP request; results in order, errors raised."""
        from adapters.evm.rpc import RpcError

        try:
            return self.connection.rpc_batch([(m, list(p)) for m, p in calls])
        except RpcError as exc:
            raise AnvilFailed(f"{exc.method}: {exc.error}") from None

    @property
    def connection(self) -> ChainConnection:
        """The ChainConnection to this anvil (adapters/evm/chain.py)."""
        if self._conn is None:
            self._conn = _connection(self.url, 120.0)
        return self._conn

    def stop(self) -> None:
        if self._relay is not None:
            self._relay.stop()
            self._relay = None
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def __enter__(self) -> Anvil:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
