"""`marketmeter serve --demo` prints ready-to-paste AWS CLI commands; each succeeds as printed.

The commands are taken verbatim from the server's stdout (only the two `export` lines it prints
come with them, carrying the real port) and run with bash and the virtual environment's `aws`.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

AWS_DIR = Path(sys.executable).parent


@pytest.fixture(scope="module")
def demo(marketmeter_bin):
    """(printed stdout lines, tmpdir) of a running demo server."""
    if not (AWS_DIR / "aws").exists():
        pytest.fail(f"AWS CLI not found in {AWS_DIR}; run the suite with scripts/test-python.sh", pytrace=False)
    tmp = tempfile.TemporaryDirectory(prefix="marketmeter-py-demo-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MARKETMETER_"))}
    env["MARKETMETER_LOG"] = "warn"
    stderr = open(Path(tmp.name) / "stderr.log", "wb")
    proc = subprocess.Popen(
        [str(marketmeter_bin), "serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir", tmp.name],
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env,
        cwd=tmp.name,
    )
    lines: list[str] = []
    q: queue.Queue = queue.Queue()

    def pump():
        for raw in proc.stdout:
            q.put(raw.decode("utf-8", "replace").rstrip("\n"))
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    # Read until the output goes quiet (the demo text is printed at once after start-up).
    deadline = time.monotonic() + 30
    quiet = 1.5
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=quiet if lines else deadline - time.monotonic())
        except queue.Empty:
            break
        if line is None:
            break
        lines.append(line)
    try:
        yield lines, tmp.name
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stderr.close()
        tmp.cleanup()


def _bash(script: str, tmpdir: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MARKETMETER_"))}
    env["PATH"] = f"{AWS_DIR}{os.pathsep}{env.get('PATH', '')}"
    env["AWS_CONFIG_FILE"] = "/dev/null"
    env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120, cwd=tmpdir)


def test_demo_prints_exports_and_one_command_per_operation(demo):
    lines, _ = demo
    text = "\n".join(lines)
    assert any(l.startswith("marketmeter listening on http://127.0.0.1:") for l in lines), text
    exports = [l for l in lines if l.startswith("export ")]
    assert any(l.startswith("export AWS_ENDPOINT_URL_MARKETPLACE_METERING=http://127.0.0.1:") for l in exports), text
    assert "export AWS_DEFAULT_REGION=us-east-1" in exports, text
    commands = [l for l in lines if l.startswith("AWS_ACCESS_KEY_ID=") and " aws meteringmarketplace " in l]
    ops = sorted(c.split(" aws meteringmarketplace ", 1)[1].split()[0] for c in commands)
    assert ops == ["batch-meter-usage", "meter-usage", "register-usage", "resolve-customer"], text


def _commands(lines):
    exports = [l for l in lines if l.startswith("export ")]
    commands = [l for l in lines if " aws meteringmarketplace " in l]
    return exports, commands


@pytest.mark.parametrize("op", ["resolve-customer", "batch-meter-usage", "meter-usage", "register-usage"])
def test_demo_command_succeeds_as_printed(demo, op):
    lines, tmpdir = demo
    exports, commands = _commands(lines)
    [cmd] = [c for c in commands if c.split(" aws meteringmarketplace ", 1)[1].split()[0] == op]
    p = _bash("\n".join(["set -euo pipefail", *exports, cmd]), tmpdir)
    assert p.returncode == 0, f"{cmd}\nexit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    assert p.stdout.strip().startswith("{"), p.stdout


def test_all_demo_commands_as_one_pasted_script(demo):
    """Pasting the whole block (exports then every command) into a shell works, twice (retries)."""
    lines, tmpdir = demo
    exports, commands = _commands(lines)
    p = _bash("\n".join(["set -euo pipefail", *exports, *commands, *commands]), tmpdir)
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"


def test_demo_admin_command_shows_the_metered_usage(demo):
    lines, tmpdir = demo
    admin = [l for l in lines if " admin " in l and "usage-records" in l]
    assert len(admin) == 1, lines
    exports, commands = _commands(lines)
    [batch] = [c for c in commands if " batch-meter-usage " in c]
    p = _bash("\n".join(["set -euo pipefail", *exports, batch, admin[0]]), tmpdir)
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    assert "demo-saas" in p.stdout and "requests" in p.stdout, p.stdout
