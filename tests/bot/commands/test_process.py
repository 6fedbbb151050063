"""What only a real `lphedge` process shows (the console script pip installed): exit codes as
the shell sees them, stderr with no traceback, Ctrl-C, a key in a URL never printed.
Everything else about the commands is tested in process (tests/support/cli.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cli

ROOT = Path(__file__).resolve().parents[3]
LPHEDGE = str(Path(sys.executable).parent / "lphedge")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LPHEDGE_")}
    full_env.update(env or {})
    return subprocess.run([LPHEDGE, *args], capture_output=True, text=True, timeout=120,
                          env=full_env, cwd=ROOT, check=False)


def assert_one_line(out: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert out.returncode == code, (out.returncode, out.stderr)
    assert out.stdout == "" and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ")
    assert needle in out.stderr, out.stderr


def test_help_and_version() -> None:
    out = run("--help")
    assert out.returncode == 0 and out.stderr == ""
    assert "positions" in out.stdout and "version" in out.stdout
    out = run("version", "--json")
    assert out.returncode == 0 and out.stderr == ""
    from importlib.metadata import version

    assert json.loads(out.stdout)["version"] == version("lphedge")


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text("version = \n")
    out = run("plan", "--state", str(ROOT / "examples" / "state.json"), "--policy", str(bad))
    assert_one_line(out, 2, f"error: {bad}: ")
    assert "TOML syntax" in out.stderr


def test_unreachable_rpc_key_never_printed() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    out = run("positions", "--rpc-url", f"http://127.0.0.1:{port}/v3/SECRETKEY123",
              "--owner", "0x" + "11" * 20, "--position-manager", "0x" + "22" * 20)
    assert_one_line(out, 2, "cannot reach any RPC endpoint")
    assert "SECRETKEY123" not in out.stderr + out.stdout


def test_ctrl_c_exits_130_without_a_traceback() -> None:
    """SIGINT while the command waits on an RPC node that accepted the connection and never
    answers: exit 130, nothing but at most one line on stderr."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.settimeout(60)  # a bound on a broken test, not a timing assertion
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LPHEDGE_")}
        env["LPHEDGE_RPC_TIMEOUT"] = "600"
        proc = subprocess.Popen([LPHEDGE, "positions", "--rpc-url", url,
                                 "--owner", "0x" + "11" * 20,
                                 "--position-manager", "0x" + "22" * 20],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, cwd=ROOT)
        try:
            conn, _ = server.accept()  # the command is now waiting for an answer
            with conn:
                conn.recv(65536)  # its request
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, (proc.returncode, err)
    assert out == "" and "Traceback" not in err and err.count("\n") <= 1, err
