"""boto3 (botocore 1.44.5, the newest model) against marketmeter: every operation and the main errors."""

import base64
import json

import botocore
import botocore.exceptions
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from conftest import (BUYER, BUYER_EC2, BUYER_ECS, BUYER_EKS, CANCELLED_LICENSE, LICENSE, NOSUB_EC2,
                      NOSUB_ECS, OTHER_SELLER, SELLER, SELLER_SESSION, hours_ago)


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def rec(dimension, at, quantity=None, decimal=None, account=BUYER, license=LICENSE, **extra):
    r = {"Timestamp": at, "Dimension": dimension, "CustomerAWSAccountId": account, "LicenseArn": license}
    if quantity is not None:
        r["Quantity"] = quantity
    if decimal is not None:
        r["QuantityAsDecimal"] = decimal
    r.update(extra)
    return r


def test_batch_success_retry_duplicate_and_value_equality(server):
    c = server.client(SELLER)
    at = hours_ago(1)
    out = c.batch_meter_usage(UsageRecords=[rec("requests", at, quantity=17)])
    assert out["ResponseMetadata"]["RequestId"]
    [r] = out["Results"]
    assert r["Status"] == "Success" and r["MeteringRecordId"]
    assert r["UsageRecord"]["LicenseArn"] == LICENSE
    assert out["UnprocessedRecords"] == []
    again = c.batch_meter_usage(UsageRecords=[rec("requests", at, decimal="17.000")])
    assert again["Results"][0]["MeteringRecordId"] == r["MeteringRecordId"]
    assert again["Results"][0]["Status"] == "Success"
    dup = c.batch_meter_usage(UsageRecords=[rec("requests", at, decimal="17.5")])
    assert dup["Results"][0]["Status"] == "DuplicateRecord"
    stored = [x for x in server.usage("e2e-saas") if x["metering_record_id"] == r["MeteringRecordId"]]
    assert len(stored) == 1 and stored[0]["quantity"] == "17" and stored[0]["operation"] == "BatchMeterUsage"


def test_batch_decimal_allocations_and_legacy_identity(server):
    c = server.client(SELLER_SESSION)
    at = hours_ago(2)
    allocations = [
        {"AllocatedUsageQuantityAsDecimal": "1.25", "Tags": [{"Key": "team", "Value": "red"}]},
        {"AllocatedUsageQuantityAsDecimal": "0.75"},
    ]
    out = c.batch_meter_usage(UsageRecords=[rec("storage_gb", at, decimal="2", UsageAllocations=allocations)])
    rid = out["Results"][0]["MeteringRecordId"]
    stored = next(x for x in server.usage("e2e-saas") if x["metering_record_id"] == rid)
    assert stored["quantity"] == "2"
    assert stored["allocations"][0] == {"quantity": "1.25", "tags": [{"key": "team", "value": "red"}]}
    legacy = c.batch_meter_usage(ProductCode="e2e-saas", UsageRecords=[
        {"Timestamp": at, "CustomerIdentifier": "cust-e2e-buyer", "Dimension": "storage_gb", "Quantity": 2}])
    assert legacy["Results"][0]["Status"] == "Success"
    assert legacy["Results"][0]["MeteringRecordId"] != rid


def test_batch_whole_request_failures_store_nothing(server):
    c = server.client(SELLER)
    before = len(server.usage("e2e-saas"))
    at = hours_ago(3)
    cases = [
        ([rec("users", at, quantity=1)] * 26, "ValidationException"),
        ([rec("users", at, quantity=1), rec("users", hours_ago(25), quantity=1)], "TimestampOutOfBoundsException"),
        ([rec("users", at, quantity=1), rec("nope", at, quantity=1)], "InvalidUsageDimensionException"),
        ([rec("users", at, quantity=1, license="arn:aws:license-manager::1:license/l-unknown")], "InvalidLicenseException"),
        ([rec("users", at, quantity=1, account="777766665555")], "InvalidLicenseException"),
        ([rec("users", at, quantity=1, UsageAllocations=[{"AllocatedUsageQuantity": 1, "Tags": [
            {"Key": f"k{i}", "Value": "v"} for i in range(6)]}])], "InvalidTagException"),
        ([rec("users", at, quantity=3, UsageAllocations=[{"AllocatedUsageQuantity": 1}])], "InvalidUsageAllocationsException"),
        ([rec("users", at, quantity=1, UsageAllocations=[{"AllocatedUsageQuantity": 1, "Tags": [
            {"Key": "bad\u00e9key", "Value": "v"}]}])], "InvalidTagException"),
    ]
    for records, expected in cases:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.batch_meter_usage(UsageRecords=records)
        assert code(e) == expected, (expected, e.value.response["Error"])
        assert e.value.response["Error"]["Message"]
    assert len(server.usage("e2e-saas")) == before


def test_batch_statuses_and_product_ownership(server):
    c = server.client(SELLER)
    at = hours_ago(4)
    out = c.batch_meter_usage(UsageRecords=[rec("users", at, quantity=1, account="777766665555", license=CANCELLED_LICENSE)])
    assert out["Results"][0]["Status"] == "CustomerNotSubscribed"
    with pytest.raises(c.exceptions.InvalidProductCodeException):
        c.batch_meter_usage(ProductCode="other-saas", UsageRecords=[
            {"Timestamp": at, "CustomerIdentifier": "cust-e2e-buyer", "Dimension": "requests", "Quantity": 1}])
    with pytest.raises(c.exceptions.InvalidProductCodeException):
        server.client(OTHER_SELLER).batch_meter_usage(UsageRecords=[rec("users", at, quantity=1)])


def test_meter_usage(server):
    ec2 = server.client(BUYER_EC2)
    at = hours_ago(1)
    first = ec2.meter_usage(ProductCode="e2e-ami", Timestamp=at, UsageDimension="hosts", UsageQuantity=4)
    again = ec2.meter_usage(ProductCode="e2e-ami", Timestamp=at, UsageDimension="hosts", UsageQuantityAsDecimal="4.0")
    assert first["MeteringRecordId"] == again["MeteringRecordId"]
    with pytest.raises(ec2.exceptions.DuplicateRequestException):
        ec2.meter_usage(ProductCode="e2e-ami", Timestamp=at, UsageDimension="hosts", UsageQuantity=5)
    ec2.meter_usage(ProductCode="e2e-ami", Timestamp=hours_ago(2), UsageDimension="cores", UsageQuantity=1, ClientToken="py-tok")
    with pytest.raises(ec2.exceptions.IdempotencyConflictException) as e:
        ec2.meter_usage(ProductCode="e2e-ami", Timestamp=hours_ago(2), UsageDimension="cores", UsageQuantity=2, ClientToken="py-tok")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    with pytest.raises(ec2.exceptions.CustomerNotEntitledException):
        server.client(NOSUB_EC2).meter_usage(ProductCode="e2e-ami", Timestamp=at, UsageDimension="hosts", UsageQuantity=1)
    with pytest.raises(ec2.exceptions.InvalidEndpointRegionException):
        server.client(BUYER_EC2, region="us-west-2").meter_usage(ProductCode="e2e-ami", Timestamp=at, UsageDimension="hosts", UsageQuantity=1)
    with pytest.raises(ec2.exceptions.TimestampOutOfBoundsException):
        ec2.meter_usage(ProductCode="e2e-ami", Timestamp=hours_ago(7), UsageDimension="hosts", UsageQuantity=1)
    with pytest.raises(ec2.exceptions.InvalidProductCodeException):
        ec2.meter_usage(ProductCode="e2e-saas", Timestamp=at, UsageDimension="requests", UsageQuantity=1)
    before = len(server.usage("e2e-ami"))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.meter_usage(ProductCode="e2e-ami", Timestamp=hours_ago(3), UsageDimension="hosts", UsageQuantity=1, DryRun=True)
    assert code(e) == "DryRunOperation"
    assert len(server.usage("e2e-ami")) == before


def b64(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_register_usage_signature_verifies(server):
    ecs = server.client(BUYER_ECS)
    out = ecs.register_usage(ProductCode="e2e-container", PublicKeyVersion=1, Nonce="py-nonce")
    header, payload, signature = out["Signature"].split(".")
    assert json.loads(b64(header))["alg"] == "PS256"
    claims = json.loads(b64(payload))
    assert claims["productCode"] == "e2e-container" and claims["nonce"] == "py-nonce"
    assert claims["publicKeyVersion"] == 1 and isinstance(claims["iat"], int)
    keys = server.admin("GET", "/admin/v1/products/e2e-container/public-keys")["keys"]
    public = serialization.load_pem_public_key(keys[0]["pem"].encode())
    public.verify(b64(signature), f"{header}.{payload}".encode(),
                  padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    with pytest.raises(ecs.exceptions.InvalidPublicKeyVersionException):
        ecs.register_usage(ProductCode="e2e-container", PublicKeyVersion=99)
    with pytest.raises(ecs.exceptions.PlatformNotSupportedException):
        server.client(BUYER_EC2).register_usage(ProductCode="e2e-container", PublicKeyVersion=1)
    with pytest.raises(ecs.exceptions.CustomerNotEntitledException):
        server.client(NOSUB_ECS).register_usage(ProductCode="e2e-container", PublicKeyVersion=1)
    with pytest.raises(ecs.exceptions.InvalidRegionException):
        server.client(BUYER_EKS).register_usage(ProductCode="e2e-container", PublicKeyVersion=1)


def test_resolve_customer(server):
    token = server.token()
    c = server.client(SELLER)
    out = c.resolve_customer(RegistrationToken=token)
    assert out["CustomerIdentifier"] == "cust-e2e-buyer"
    assert out["CustomerAWSAccountId"] == BUYER
    assert out["ProductCode"] == "e2e-saas"
    assert out["LicenseArn"] == LICENSE
    assert out["Metadata"]["AgreementId"] == "agmt-e2e-saas-buyer"
    assert c.resolve_customer(RegistrationToken=token)["LicenseArn"] == LICENSE
    with pytest.raises(c.exceptions.InvalidTokenException):
        server.client(OTHER_SELLER).resolve_customer(RegistrationToken=token)
    with pytest.raises(c.exceptions.InvalidTokenException):
        c.resolve_customer(RegistrationToken="garbage")


def test_authentication_errors(server):
    token = server.token()
    cases = [
        (server.client(("AKIAE2ESELLER0000001", "wrong", None)), "InvalidSignatureException"),
        (server.client(("AKIANOSUCHKEY0000000", "x", None)), "UnrecognizedClientException"),
        (server.client(("ASIAE2ESELLERSESSION", "seller-session-secret", None)), "UnrecognizedClientException"),
        (server.client(SELLER, signature_version=botocore.UNSIGNED), "MissingAuthenticationTokenException"),
    ]
    for client, expected in cases:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            client.resolve_customer(RegistrationToken=token)
        assert code(e) == expected
