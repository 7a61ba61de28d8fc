"""The AWS CLI v1 (awscli from PyPI) against marketmeter: each operation, plus one error each."""

import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import BUYER, BUYER_EC2, BUYER_ECS, LICENSE, SELLER

AWS = shutil.which("aws")


def aws(server, creds, *args, region="us-east-1"):
    ak, sk, tok = creds
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL_MARKETPLACE_METERING=server.url, AWS_ACCESS_KEY_ID=ak,
               AWS_SECRET_ACCESS_KEY=sk, AWS_DEFAULT_REGION=region, AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_MAX_ATTEMPTS="1")
    if tok:
        env["AWS_SESSION_TOKEN"] = tok
    return subprocess.run([AWS, "meteringmarketplace", *args, "--output", "json"], env=env,
                          capture_output=True, text=True, timeout=60)


pytestmark = pytest.mark.skipif(AWS is None, reason="aws CLI not on PATH (scripts/test-python.sh installs it)")


def ok(p):
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def fails(p, code):
    assert p.returncode != 0
    assert code in p.stderr, p.stderr


def test_batch_meter_usage(server):
    ts = int(time.time()) - 5 * 3600
    out = ok(aws(server, SELLER, "batch-meter-usage", "--usage-records",
                 f"Timestamp={ts},CustomerAWSAccountId={BUYER},LicenseArn={LICENSE},Dimension=users,Quantity=3"))
    assert out["Results"][0]["Status"] == "Success"
    records = json.dumps([{"Timestamp": ts, "CustomerAWSAccountId": BUYER, "LicenseArn": LICENSE,
                           "Dimension": "nope", "Quantity": 1}])
    fails(aws(server, SELLER, "batch-meter-usage", "--usage-records", records), "InvalidUsageDimensionException")


def test_meter_usage(server):
    ts = int(time.time()) - 4 * 3600
    out = ok(aws(server, BUYER_EC2, "meter-usage", "--product-code", "e2e-ami", "--timestamp", str(ts),
                 "--usage-dimension", "cores", "--usage-quantity", "2"))
    assert out["MeteringRecordId"]
    fails(aws(server, BUYER_EC2, "meter-usage", "--product-code", "e2e-ami", "--timestamp", str(ts),
              "--usage-dimension", "cores", "--usage-quantity", "2", region="eu-west-1"),
          "InvalidEndpointRegionException")


def test_register_usage(server):
    out = ok(aws(server, BUYER_ECS, "register-usage", "--product-code", "e2e-container",
                 "--public-key-version", "1", "--nonce", "cli"))
    assert out["Signature"].count(".") == 2
    fails(aws(server, BUYER_ECS, "register-usage", "--product-code", "e2e-container",
              "--public-key-version", "42"), "InvalidPublicKeyVersionException")


def test_resolve_customer(server):
    out = ok(aws(server, SELLER, "resolve-customer", "--registration-token", server.token()))
    assert out["CustomerAWSAccountId"] == BUYER and out["LicenseArn"] == LICENSE
    fails(aws(server, SELLER, "resolve-customer", "--registration-token", "nope"), "InvalidTokenException")
