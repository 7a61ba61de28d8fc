"""`marketmeter serve --demo` prints one AWS CLI command per operation; each succeeds as printed."""

import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import binary

pytestmark = pytest.mark.skipif(shutil.which("aws") is None, reason="aws CLI not on PATH")


def test_demo_commands_succeed_as_printed():
    with tempfile.TemporaryDirectory() as d:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(MARKETMETER_LOG="warn")
        proc = subprocess.Popen([binary(), "serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir", d],
                                stdout=subprocess.PIPE, text=True, env=env)
        try:
            lines, deadline = [], time.time() + 30
            while time.time() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line.rstrip("\n"))
                if " admin --endpoint " in line:
                    break
            exports = [l for l in lines if l.startswith("export AWS_")]
            commands = [l for l in lines if " aws meteringmarketplace " in l or " admin --endpoint " in l]
            assert len(exports) == 2
            ops = {c.split(" aws meteringmarketplace ")[1].split()[0] for c in commands if " aws " in c}
            assert ops == {"resolve-customer", "batch-meter-usage", "meter-usage", "register-usage"}
            for cmd in commands:
                script = "\n".join(["set -e", "export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null",
                                    *exports, cmd])
                p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, env=env)
                assert p.returncode == 0, f"{cmd}\n{p.stderr}"
        finally:
            proc.terminate()
            proc.wait(10)
