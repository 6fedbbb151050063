"""One redactor for every message: keys in paths, queries and userinfo never pass."""

from __future__ import annotations

from adapters.redact import redact_urls


def test_urls_cut_to_scheme_host_port() -> None:
    text = ("a http://127.0.0.1:8545 b https://eth.example/v2/KEY1?x=1 "
            "c wss://user:KEY2@node.example:443/ws d url='https://api.example/q?apikey=KEY3'")
    out = redact_urls(text)
    assert "KEY1" not in out and "KEY2" not in out and "KEY3" not in out and "user" not in out
    assert "http://127.0.0.1:8545 " in out  # nothing hidden, nothing marked
    assert "https://eth.example/..." in out and "wss://node.example:443/..." in out
