"""Keep secrets out of what lphedge prints, logs and stores.

RPC and API keys live in URL paths, queries and userinfo (.../v2/<key>, ?apikey=...,
user:pass@host); every URL in a message is cut to scheme, host and port.
"""

from __future__ import annotations

import re

_URL = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^/\s'\"?#@]*@)?([^/\s'\"?#@]+)([^\s'\"]*)")


def redact_urls(text: str) -> str:
    """Every URL in `text` cut to scheme://host[:port], with "/..." where more was cut."""
    def cut(m: re.Match[str]) -> str:
        hidden = m.group(3) or "@" in m.group(0)
        return m.group(1) + m.group(2) + ("/..." if hidden else "")

    return _URL.sub(cut, text)
