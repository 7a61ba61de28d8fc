"""Shared fixtures for the Python end-to-end suites (boto3, AWS CLI v1, raw HTTP, demo).

Two servers are started once per session, each on a free port with a fresh SQLite database in
a temporary directory and the seed ``tests/e2e/seed.toml``:

* ``server``      -- SigV4 verification on (the default), used by the boto3 and CLI suites;
* ``open_server`` -- ``--auth open``, used by the raw-HTTP suite (no SDK, no signature).

The binary is ``$MARKETMETER_BIN`` or ``<repo>/target/debug/marketmeter``.

Tests that share a server keep out of each other's way by using their own
(identity, dimension, hour) slot: timestamps are "now minus a whole number of hours" and every
test uses a number of hours no other test uses with the same identity and dimension.  The
assignments are listed in SLOTS below so collisions are easy to spot.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED = REPO_ROOT / "tests" / "e2e" / "seed.toml"
ADMIN_TOKEN = "py-e2e-admin-token"
REGION = "us-east-1"

# Keep the developer's own AWS configuration out of every client the tests create (boto3 in this
# process and the `aws` subprocesses inherit this environment).
for _var in list(os.environ):
    if _var.startswith("AWS_"):
        del os.environ[_var]
os.environ["AWS_CONFIG_FILE"] = "/dev/null"
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

# ---------------------------------------------------------------------------------------------
# The test world (mirrors tests/e2e/seed.toml)

SELLER_ACCOUNT = "111122223333"
BUYER_ACCOUNT = "444455556666"
NOSUB_ACCOUNT = "777766665555"

SAAS = "e2e-saas"
AMI = "e2e-ami"
CONTAINER = "e2e-container"
OTHER_SAAS = "other-saas"

BUYER_CUSTOMER_ID = "cust-e2e-buyer"
CANCELLED_CUSTOMER_ID = "cust-e2e-cancelled"
BUYER_SAAS_LICENSE = "arn:aws:license-manager::111122223333:license/l-e2e0saas0buyer"
CANCELLED_SAAS_LICENSE = "arn:aws:license-manager::111122223333:license/l-e2e0saas0cancelled"
BUYER_AMI_LICENSE = "arn:aws:license-manager::111122223333:license/l-e2e0ami0buyer"
BUYER_SAAS_AGREEMENT = "agmt-e2e-saas-buyer"
EC2_INSTANCE = "i-0e2e0000000000001"

# name -> (access key id, secret, session token)
CREDS = {
    "seller": ("AKIAE2ESELLER0000001", "seller-secret", None),
    "seller_session": ("ASIAE2ESELLERSESSION", "seller-session-secret", "seller-session-token"),
    "other_seller": ("AKIAE2EOTHERSELLER01", "other-seller-secret", None),
    "buyer_ec2": ("ASIAE2EBUYEREC200001", "buyer-ec2-secret", "buyer-ec2-session-token"),
    "buyer_ecs": ("ASIAE2EBUYERECS00001", "buyer-ecs-secret", None),
    "buyer_eks": ("ASIAE2EBUYEREKS00001", "buyer-eks-secret", None),  # pod in us-west-2
    "buyer_plain": ("AKIAE2EBUYERPLAIN001", "buyer-plain-secret", None),
    "nosub_ec2": ("ASIAE2ENOSUBEC200001", "nosub-ec2-secret", None),
    "nosub_ecs": ("ASIAE2ENOSUBECS00001", "nosub-ecs-secret", None),
}

# Hours-ago slots per (identity, product, dimension): hours_ago(n) = session "now" minus n hours.
# BatchMeterUsage accepts < 24 h, MeterUsage < 6 h. A test owns its slot, so no two tests write
# the same dedup key (error tests that must store nothing also get their own slot, so a stray
# write would show up in the right place).
#
# BatchMeterUsage on e2e-saas, buyer 444455556666, license identity (CustomerAWSAccountId+LicenseArn):
#   requests    1 success              2 identical retry        3 DuplicateRecord
#               4 Quantity vs decimal  5 >25 records (none)     6 25 records
#               7 legacy/license independence                   8 session-token seller key
#               9 invalid/non-SaaS license (none)               11 unknown dimension (none)
#               12 mixed batch         13 resolve-then-meter    14 CLI happy path
#               16 CustomerIdentifier "" treated as absent
#   storage_gb  1 tags stored          2 six tags (none)        3 allocation mismatch (none)
#               4 decimal allocations  5 out-of-bounds batch (none)
#   users       1 mixed batch          3 fractional timestamp   6 25 records
#               20 forged / cross-tenant requests (test_security.py; none)
# legacy identity (ProductCode + CustomerIdentifier cust-e2e-buyer):
#   requests    7 independence         10 other seller's product (none)   15 success
#   users       2 identical retry
# cancelled customer 777766665555: requests 1 and 12 (CustomerNotSubscribed, none stored)
# Out of window: 25 h (batch, boto3 and CLI), 7 h (MeterUsage).
#
# MeterUsage on e2e-ami, EC2 instance i-0e2e0000000000001 (buyer):
#   hosts  0 success + retry (errors that store nothing also use 0)   1 DuplicateRequest
#          2 DryRun, then a real call   3 CLI happy path   4 decimal quantity
#   cores  0 ClientToken retry   1/2 IdempotencyConflict (2 must stay empty)   3 allocations
#          5 dry runs and forged requests (test_security.py; must stay empty)
# MeterUsage on e2e-container, vcpu 1: the ECS task and the EKS pod (separate resources).

# ---------------------------------------------------------------------------------------------
# Time helpers


# One "now" for the whole session: every slot is this instant minus a whole number of hours, so
# two slots never share an hour bucket even when the wall clock crosses an hour between tests.
# (Keep sessions under ~50 minutes: MeterUsage slots go up to 4 h back in a 6 h window.)
SESSION_NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def hours_ago(n: int, *, batch: bool = False) -> dt.datetime:
    """The session's "now" minus ``n`` whole hours (UTC, whole seconds).

    With ``batch=True`` the result must be accepted by BatchMeterUsage: records of the previous
    calendar month are refused after 06:00 UTC on the 1st (month-end cut-off), so on such a day a
    test whose slot falls into the previous month is skipped rather than failing spuriously.
    """
    ts = SESSION_NOW - dt.timedelta(hours=n)
    if batch and n < 24:
        now = dt.datetime.now(dt.timezone.utc)
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if ts < month_start and now >= month_start + dt.timedelta(hours=6):
            pytest.skip(f"{n} h ago is in the previous month, past the month-end cut-off")
    return ts


def epoch(ts: dt.datetime) -> int:
    return calendar.timegm(ts.utctimetuple())


def hour_of(ts: dt.datetime) -> dt.datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def parse_rfc3339(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


# ---------------------------------------------------------------------------------------------
# Server process


class TestDatabase:
    """Where a test server keeps its data.

    ``MARKETMETER_TEST_DB=postgres`` puts it in a fresh schema of the test PostgreSQL
    (``DATABASE_URL``, else postgres://postgres@127.0.0.1:5432/test); the server creates the schema
    on start and ``drop()`` removes it (with ``psql`` when it is installed). Otherwise a SQLite
    file in the server's temporary directory.
    """

    def __init__(self, workdir: Path, name: str, password: str | None = None):
        self.schema = None
        backend = os.environ.get("MARKETMETER_TEST_DB", "sqlite") or "sqlite"
        self.backend = backend
        if backend == "sqlite":
            self.arg = str(workdir / "db.sqlite3")
        elif backend == "postgres":
            self.base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/test"
            url = self.base
            if password is not None:
                # user@host -> user:password@host (ignored by trust authentication).
                url = re.sub(r"^(postgres(?:ql)?://[^:@/]+)@", rf"\1:{password}@", url)
            self.schema = f"mm_py_{name}_{os.getpid()}_{time.time_ns()}".replace("-", "_")
            sep = "&" if "?" in url else "?"
            self.arg = f"{url}{sep}options=-c%20search_path%3D{self.schema}&application_name=marketmeter_py"
        else:
            raise RuntimeError(f"MARKETMETER_TEST_DB={backend!r}: use sqlite or postgres")

    def drop(self) -> None:
        if self.schema is None or shutil.which("psql") is None:
            return
        subprocess.run(
            ["psql", "-q", "-X", self.base, "-c", f"DROP SCHEMA IF EXISTS {self.schema} CASCADE"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )


class Server:
    """A running ``marketmeter serve`` process."""

    def __init__(self, binary: Path, workdir: Path, extra_args: list[str], name: str, *, log: str = "warn",
                 db_password: str | None = None):
        self.workdir = workdir
        self.name = name
        self.stderr_path = workdir / "stderr.log"
        self.stdout_lines: list[str] = []
        self.database = TestDatabase(workdir, name, db_password)
        args = [
            str(binary),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            self.database.arg,
            "--seed",
            str(SEED),
            "--admin-token",
            ADMIN_TOKEN,
            *extra_args,
        ]
        env = dict(os.environ, MARKETMETER_LOG=log)
        for var in list(env):
            if var.startswith("MARKETMETER_") and var not in ("MARKETMETER_LOG",):
                del env[var]
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=str(workdir),
        )
        self.url = self._wait_for_listen_line()
        self.port = int(self.url.rsplit(":", 1)[1])
        self._check_backend()

    def _wait_for_listen_line(self, timeout: float = 30.0) -> str:
        lines: queue.Queue = queue.Queue()

        def pump():
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.stdout_lines.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise RuntimeError(f"{self.name}: no 'listening on' line within {timeout}s; {self.diagnostics()}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=5)
                raise RuntimeError(
                    f"{self.name}: server exited (code {self.proc.returncode}) before listening; "
                    f"{self.diagnostics()}"
                )
            prefix = "marketmeter listening on "
            if line.startswith(prefix):
                return line[len(prefix):].strip()

    def _check_backend(self, timeout: float = 10.0) -> None:
        """The server says which database it opened (``database: <backend> <where>``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            said = [line for line in self.stdout_lines if line.startswith("database: ")]
            if said:
                backend = said[0].split()[1]
                assert backend == self.database.backend, (said[0], self.database.backend)
                return
            time.sleep(0.02)
        raise RuntimeError(f"{self.name}: the server did not say which database it opened")

    def diagnostics(self) -> str:
        try:
            err = self.stderr_path.read_text(errors="replace")[-4000:]
        except OSError:
            err = ""
        return f"stdout: {self.stdout_lines[-20:]!r}\nstderr tail:\n{err}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._stderr.close()
        self.database.drop()

    # -- admin API ---------------------------------------------------------------------------

    def admin(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {ADMIN_TOKEN}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def registration_token(self, product_code: str, account: str) -> str:
        status, body = self.admin(
            "POST",
            "/admin/v1/registration-tokens",
            {"product_code": product_code, "customer_aws_account_id": account},
        )
        assert status == 201, (status, body)
        assert body["expires_at"]
        return body["registration_token"]

    def usage_records(self, product_code: str) -> list[dict]:
        status, body = self.admin("GET", f"/admin/v1/usage-records?product_code={product_code}&limit=100000")
        assert status == 200, (status, body)
        return body["records"]

    def records_where(self, product_code: str, *, hour: dt.datetime | None = None, **fields) -> list[dict]:
        """Stored usage records of a product matching the given fields (and hour bucket)."""
        out = []
        for r in self.usage_records(product_code):
            if hour is not None and parse_rfc3339(r["hour"]) != hour_of(hour):
                continue
            if all(r.get(k) == v for k, v in fields.items()):
                out.append(r)
        return out

    def public_keys(self, product_code: str) -> list[dict]:
        status, body = self.admin("GET", f"/admin/v1/products/{product_code}/public-keys")
        assert status == 200, (status, body)
        return body["keys"]


def _binary() -> Path:
    env = os.environ.get("MARKETMETER_BIN")
    path = Path(env) if env else REPO_ROOT / "target" / "debug" / "marketmeter"
    if not path.is_absolute():
        path = (REPO_ROOT / path).resolve()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"marketmeter binary not found or not executable at {path}; build it with "
            "`cargo build -p marketmeter --bin marketmeter` or set MARKETMETER_BIN",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def marketmeter_bin() -> Path:
    return _binary()


def _start(binary: Path, extra: list[str], name: str, **options):
    """A server in a temporary directory; ``options`` go to :class:`Server` (log, db_password)."""
    tmp = tempfile.TemporaryDirectory(prefix=f"marketmeter-py-{name}-")
    try:
        srv = Server(binary, Path(tmp.name), extra, name, **options)
    except Exception:
        tmp.cleanup()
        raise
    return srv, tmp


@pytest.fixture(scope="session")
def server(marketmeter_bin):
    srv, tmp = _start(marketmeter_bin, [], "sigv4")
    yield srv
    srv.stop()
    tmp.cleanup()


@pytest.fixture(scope="session")
def open_server(marketmeter_bin):
    srv, tmp = _start(marketmeter_bin, ["--auth", "open"], "open")
    yield srv
    srv.stop()
    tmp.cleanup()


# ---------------------------------------------------------------------------------------------
# boto3 clients

# No retries: every test sees exactly one request/response.
_NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=30)


def make_client(server: Server, who: str, region: str = REGION, *, session_token: object = "default"):
    key, secret, token = CREDS[who]
    if session_token != "default":
        token = session_token
    return boto3.session.Session().client(
        "meteringmarketplace",
        endpoint_url=server.url,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=_NO_RETRY,
    )


@pytest.fixture(scope="session")
def client_for(server):
    """``client_for(name, region="us-east-1")`` -> a boto3 client with that seed credential."""
    cache: dict = {}

    def get(who: str, region: str = REGION):
        if (who, region) not in cache:
            cache[(who, region)] = make_client(server, who, region)
        return cache[(who, region)]

    return get


@pytest.fixture(scope="session")
def seller(client_for):
    return client_for("seller")


@pytest.fixture(scope="session")
def other_seller(client_for):
    return client_for("other_seller")


@pytest.fixture(scope="session")
def buyer_ec2(client_for):
    return client_for("buyer_ec2")


@pytest.fixture(scope="session")
def buyer_ecs(client_for):
    return client_for("buyer_ecs")


@pytest.fixture(scope="session")
def nosub_ec2(client_for):
    return client_for("nosub_ec2")


@pytest.fixture(scope="session")
def nosub_ecs(client_for):
    return client_for("nosub_ecs")


def error_of(excinfo) -> tuple[str, int, dict]:
    """(error code, HTTP status, response) of a botocore ClientError."""
    resp = excinfo.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"], resp


def assert_error(excinfo, code: str, status: int = 400) -> dict:
    got_code, got_status, resp = error_of(excinfo)
    assert (got_code, got_status) == (code, status), resp
    assert resp["ResponseMetadata"].get("RequestId"), resp["ResponseMetadata"]
    headers = resp["ResponseMetadata"]["HTTPHeaders"]
    assert headers.get("x-amzn-errortype") == code, headers
    assert resp["Error"].get("Message"), resp
    return resp


def qty(s) -> Decimal:
    return Decimal(str(s))
