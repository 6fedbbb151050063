"""`lphedge` in process: bot.cli.main (the console script's entry point, with its one-line
error mapping and exit codes) run with an argv, output captured.

For tests where the process itself is not what is tested: same argv, same exit code, same
stdout/stderr text, about a second faster per call than a fresh interpreter. The result
has the names of subprocess.CompletedProcess (returncode, stdout, stderr), so a test reads
the same either way. Async tests call ``await asyncio.to_thread(lphedge, ...)``: commands
run their own event loop (asyncio.run) while the test's loop keeps serving the loopback
venues.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

# argv, stdout, stderr and the environment are process-wide: one run at a time
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


def lphedge(*args: str, env: dict[str, str] | None = None) -> Run:
    """``lphedge ARGS`` through bot.cli.main with no LPHEDGE_* variable of the caller's
    environment (a test's settings come from ``env`` and the command line only)."""
    import bot.cli

    out, err = io.StringIO(), io.StringIO()
    with _LOCK:
        saved_env, saved_argv = dict(os.environ), sys.argv
        try:
            for key in [k for k in os.environ if k.startswith("LPHEDGE_")]:
                del os.environ[key]
            os.environ.update(env or {})
            sys.argv = ["lphedge", *args]
            with redirect_stdout(out), redirect_stderr(err):
                try:
                    bot.cli.main()
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (exc.code is not None)
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
            sys.argv = saved_argv
    return Run(int(code), out.getvalue(), err.getvalue())
