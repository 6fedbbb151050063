"""Compile a Solidity source with the npm ``solc`` package (solcjs) at test time."""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path

from adapters.anvil import PROJECT_ROOT

_SCRIPT = """
const solc = require('solc');
let input = '';
process.stdin.on('data', d => input += d);
process.stdin.on('end', () => process.stdout.write(solc.compile(input)));
"""


@cache
def compile_contract(path: Path, name: str) -> tuple[list[dict[str, object]], str]:
    """(abi, creation bytecode hex) of contract ``name`` in ``path``."""
    source = path.read_text()
    standard = {
        "language": "Solidity",
        "sources": {path.name: {"content": source}},
        "settings": {"optimizer": {"enabled": True, "runs": 200},
                     "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}}},
    }
    out = subprocess.run(["node", "-e", _SCRIPT], input=json.dumps(standard), text=True,
                         capture_output=True, cwd=PROJECT_ROOT, check=True, timeout=120)
    result = json.loads(out.stdout)
    errors = [e for e in result.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise RuntimeError("solc: " + "; ".join(e["formattedMessage"] for e in errors))
    contract = result["contracts"][path.name][name]
    return contract["abi"], "0x" + contract["evm"]["bytecode"]["object"]
