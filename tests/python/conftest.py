"""Fixtures: spawn the real marketmeter binary with the shared e2e seed, clients per credential."""

import json
import os
import pathlib
import signal
import subprocess
import tempfile
import time
import urllib.request

import boto3
import botocore.config
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEED = ROOT / "tests" / "e2e" / "seed.toml"
ADMIN_TOKEN = "py-admin-token"

# (access key, secret, session token) from tests/e2e/seed.toml
SELLER = ("AKIAE2ESELLER0000001", "seller-secret", None)
SELLER_SESSION = ("ASIAE2ESELLERSESSION", "seller-session-secret", "seller-session-token")
OTHER_SELLER = ("AKIAE2EOTHERSELLER01", "other-seller-secret", None)
BUYER_EC2 = ("ASIAE2EBUYEREC200001", "buyer-ec2-secret", "buyer-ec2-session-token")
BUYER_ECS = ("ASIAE2EBUYERECS00001", "buyer-ecs-secret", None)
BUYER_EKS = ("ASIAE2EBUYEREKS00001", "buyer-eks-secret", None)
NOSUB_EC2 = ("ASIAE2ENOSUBEC200001", "nosub-ec2-secret", None)
NOSUB_ECS = ("ASIAE2ENOSUBECS00001", "nosub-ecs-secret", None)
BUYER = "444455556666"
LICENSE = "arn:aws:license-manager::111122223333:license/l-e2e0saas0buyer"
CANCELLED_LICENSE = "arn:aws:license-manager::111122223333:license/l-e2e0saas0cancelled"


def binary():
    path = os.environ.get("MARKETMETER_BIN", str(ROOT / "target" / "debug" / "marketmeter"))
    if not os.path.exists(path):
        pytest.fail(f"marketmeter binary not found at {path}; run `cargo build` or set MARKETMETER_BIN")
    return path


class Server:
    def __init__(self, *extra):
        self.dir = tempfile.TemporaryDirectory()
        args = [binary(), "serve", "--listen", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN,
                "--seed", str(SEED), "--db", os.path.join(self.dir.name, "db.sqlite3"), *extra]
        env = dict(os.environ, MARKETMETER_LOG="warn")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
        deadline = time.time() + 30
        self.url = None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("marketmeter listening on "):
                self.url = line.split()[-1]
                break
        if not self.url:
            self.stop()
            pytest.fail("marketmeter did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.dir.cleanup()

    def admin(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req) as resp:
            return json.loads(resp.read())

    def usage(self, product):
        return self.admin("GET", f"/admin/v1/usage-records?product_code={product}")["records"]

    def token(self, product="e2e-saas", account=BUYER):
        return self.admin("POST", "/admin/v1/registration-tokens",
                          {"product_code": product, "customer_aws_account_id": account})["registration_token"]

    def client(self, creds, region="us-east-1", **config):
        ak, sk, tok = creds
        return boto3.client(
            "meteringmarketplace", endpoint_url=self.url, region_name=region,
            aws_access_key_id=ak, aws_secret_access_key=sk, aws_session_token=tok,
            config=botocore.config.Config(retries={"max_attempts": 1}, **config))


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def open_server():
    s = Server("--auth", "open")
    yield s
    s.stop()


def hours_ago(h):
    """A whole hour in the past (so each test meters its own hour), as a datetime."""
    import datetime
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return now - datetime.timedelta(hours=h)
