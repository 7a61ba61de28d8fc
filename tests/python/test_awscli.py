"""AWS CLI v1 (awscli from PyPI, the virtual environment's `aws`) against marketmeter.

Each operation once on the happy path and once with an error. The CLI is configured only through
the environment, as a user would: AWS_ENDPOINT_URL_MARKETPLACE_METERING, the key variables and
AWS_DEFAULT_REGION, with config and credential files disabled.

awscli 1.46.x bundles botocore 1.43.62, which predates QuantityAsDecimal: records use Quantity.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import (
    AMI,
    BUYER_ACCOUNT,
    BUYER_CUSTOMER_ID,
    BUYER_SAAS_LICENSE,
    CONTAINER,
    CREDS,
    EC2_INSTANCE,
    SAAS,
    epoch,
    hours_ago,
    qty,
)

AWS = Path(sys.executable).parent / "aws"


@pytest.fixture(scope="module")
def aws_bin() -> Path:
    if not AWS.exists():
        pytest.fail(f"AWS CLI not found at {AWS}; run the suite with scripts/test-python.sh", pytrace=False)
    return AWS


def aws(server, who: str, *args: str, region: str = "us-east-1") -> subprocess.CompletedProcess:
    key, secret, token = CREDS[who]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL_MARKETPLACE_METERING=server.url,
        AWS_ACCESS_KEY_ID=key,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_DEFAULT_REGION=region,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    if token:
        env["AWS_SESSION_TOKEN"] = token
    return subprocess.run(
        [str(AWS), "meteringmarketplace", *args, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(p: subprocess.CompletedProcess) -> dict:
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return json.loads(p.stdout)


def fails_with(p: subprocess.CompletedProcess, code: str) -> None:
    assert p.returncode != 0, f"expected {code}, got success: {p.stdout}"
    assert f"({code})" in p.stderr, p.stderr


def test_cli_version_is_v1(aws_bin):
    p = subprocess.run([str(aws_bin), "--version"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    assert (p.stdout + p.stderr).startswith("aws-cli/1."), p.stdout + p.stderr


def test_resolve_customer(server, aws_bin):
    token = server.registration_token(SAAS, BUYER_ACCOUNT)
    # `--opt=value` so a token that happens to start with '-' still parses; the space-separated
    # form is covered by test_resolve_customer_token_starting_with_dash.
    out = ok(aws(server, "seller", "resolve-customer", f"--registration-token={token}"))
    assert out["CustomerIdentifier"] == BUYER_CUSTOMER_ID
    assert out["CustomerAWSAccountId"] == BUYER_ACCOUNT
    assert out["ProductCode"] == SAAS
    assert out["LicenseArn"] == BUYER_SAAS_LICENSE
    # The CLI's bundled model (botocore 1.43.62) predates ResolveCustomerResult.Metadata and drops
    # it from the output; test_boto3.py checks Metadata.AgreementId.


def test_resolve_customer_token_starting_with_dash(server, aws_bin):
    """Tokens are pasted as `--registration-token TOKEN` (the demo prints exactly that); the CLI
    reads a leading '-' as an option, so a token must never start with one. Mint tokens until one
    does (base64url: 1 in 64) and use it the way a user would."""
    dashed = None
    for _ in range(2000):
        token = server.registration_token(SAAS, BUYER_ACCOUNT)
        if token.startswith("-"):
            dashed = token
            break
    if dashed is None:
        return  # no token of 2000 starts with '-': nothing can break
    p = aws(server, "seller", "resolve-customer", "--registration-token", dashed)
    assert p.returncode == 0, (
        f"registration token {dashed!r} starts with '-' and cannot be passed as "
        f"`--registration-token TOKEN`:\n{p.stderr[-500:]}"
    )


def test_resolve_customer_invalid_token(server, aws_bin):
    fails_with(aws(server, "seller", "resolve-customer", "--registration-token", "not-a-token"), "InvalidTokenException")


def test_batch_meter_usage(server, aws_bin):
    ts = epoch(hours_ago(14, batch=True))
    shorthand = (
        f"Timestamp={ts},CustomerAWSAccountId={BUYER_ACCOUNT},LicenseArn={BUYER_SAAS_LICENSE},"
        "Dimension=requests,Quantity=21"
    )
    out = ok(aws(server, "seller", "batch-meter-usage", "--usage-records", shorthand))
    [res] = out["Results"]
    assert res["Status"] == "Success"
    assert out.get("UnprocessedRecords", []) == []
    [row] = [r for r in server.usage_records(SAAS) if r["metering_record_id"] == res["MeteringRecordId"]]
    assert qty(row["quantity"]) == 21 and row["dimension"] == "requests"


def test_batch_meter_usage_timestamp_out_of_bounds(server, aws_bin):
    ts = epoch(hours_ago(25))
    records = json.dumps(
        [
            {
                "Timestamp": ts,
                "CustomerAWSAccountId": BUYER_ACCOUNT,
                "LicenseArn": BUYER_SAAS_LICENSE,
                "Dimension": "storage_gb",
                "Quantity": 1,
            }
        ]
    )
    fails_with(aws(server, "seller", "batch-meter-usage", "--usage-records", records), "TimestampOutOfBoundsException")


def test_meter_usage(server, aws_bin):
    # The EC2 workload key carries a session token (AWS_SESSION_TOKEN).
    ts = epoch(hours_ago(3))
    args = ["meter-usage", "--product-code", AMI, "--timestamp", str(ts), "--usage-dimension", "hosts", "--usage-quantity", "2"]
    first = ok(aws(server, "buyer_ec2", *args))
    assert first["MeteringRecordId"]
    again = ok(aws(server, "buyer_ec2", *args))
    assert again["MeteringRecordId"] == first["MeteringRecordId"]
    [row] = [r for r in server.usage_records(AMI) if r["metering_record_id"] == first["MeteringRecordId"]]
    assert row["resource_id"] == EC2_INSTANCE and qty(row["quantity"]) == 2


def test_meter_usage_wrong_region(server, aws_bin):
    ts = epoch(hours_ago(0))
    p = aws(
        server,
        "buyer_ec2",
        "meter-usage",
        "--product-code",
        AMI,
        "--timestamp",
        str(ts),
        "--usage-dimension",
        "hosts",
        "--usage-quantity",
        "1",
        region="us-west-2",
    )
    fails_with(p, "InvalidEndpointRegionException")


def test_register_usage(server, aws_bin):
    out = ok(aws(server, "buyer_ecs", "register-usage", "--product-code", CONTAINER, "--public-key-version", "1", "--nonce", "cli-nonce"))
    assert out["Signature"].count(".") == 2


def test_register_usage_unknown_key_version(server, aws_bin):
    p = aws(server, "buyer_ecs", "register-usage", "--product-code", CONTAINER, "--public-key-version", "42")
    fails_with(p, "InvalidPublicKeyVersionException")
