"""A fork URL's key never reaches anvil's argv (readable by every local user)."""

from __future__ import annotations

import base64
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from adapters.anvil import Anvil, AnvilError
from bot.devchain import DevChain

KEY = "k3yS3cr3tPathPart"
PASSWORD = "pw-Sekr1t"


@pytest.fixture()
def keyed_upstream(devchain: DevChain) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """An RPC endpoint that insists on /v2/<KEY> and basic auth, forwarding to the dev chain."""
    seen: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append((self.path, self.headers.get("Authorization", "")))
            body = self.rfile.read(int(self.headers["Content-Length"]))
            expected = "Basic " + base64.b64encode(f"op:{PASSWORD}".encode()).decode()
            if self.path != f"/v2/{KEY}" or self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.end_headers()
                return
            req = urllib.request.Request(devchain.url, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                answer = resp.read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://op:{PASSWORD}@127.0.0.1:{server.server_address[1]}/v2/{KEY}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_fork_url_key_stays_out_of_argv_and_the_fork_works(devchain: DevChain, keyed_upstream) -> None:
    url, seen = keyed_upstream
    with Anvil(fork_url=url, chain_id=devchain.chain_id) as fork:
        assert fork.process is not None
        cmdline = Path(f"/proc/{fork.process.pid}/cmdline").read_bytes().decode()
        assert KEY not in cmdline and PASSWORD not in cmdline
        assert "--fork-url" in cmdline
        safe = devchain.addresses["safe"]
        origin_code = devchain.w3.eth.get_code(safe).hex()
        fork_code = fork.rpc("eth_getCode", [safe, "latest"])
        assert fork_code == "0x" + origin_code.removeprefix("0x") and len(origin_code) > 10
    # anvil's reads went through the relay, with the key and the credentials
    assert seen and all(p == f"/v2/{KEY}" and a.startswith("Basic ") for p, a in seen)


def test_fork_error_names_no_secret(keyed_upstream) -> None:
    url, _ = keyed_upstream
    bad = url.replace(KEY, KEY + "x")  # the upstream answers 401
    with pytest.raises(AnvilError) as err:
        Anvil(fork_url=bad).start(timeout=20)
    assert KEY not in str(err.value) and PASSWORD not in str(err.value)
