"""boto3 / botocore (the newest model: QuantityAsDecimal, Metadata.AgreementId) against marketmeter.

Every test owns its (identity, dimension, hour) slot; see SLOTS in conftest.py.
"""

from __future__ import annotations

import base64
import json
import time

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from conftest import (
    AMI,
    BUYER_ACCOUNT,
    BUYER_AMI_LICENSE,
    BUYER_CUSTOMER_ID,
    BUYER_SAAS_AGREEMENT,
    BUYER_SAAS_LICENSE,
    CANCELLED_SAAS_LICENSE,
    CONTAINER,
    EC2_INSTANCE,
    NOSUB_ACCOUNT,
    OTHER_SAAS,
    REGION,
    SAAS,
    assert_error,
    hour_of,
    hours_ago,
    make_client,
    qty,
)


def lic(dimension: str, ts, *, quantity=None, decimal=None, account=BUYER_ACCOUNT, license=BUYER_SAAS_LICENSE, **extra):
    """A UsageRecord with the concurrent-agreement identity (CustomerAWSAccountId + LicenseArn)."""
    r = {"Timestamp": ts, "Dimension": dimension, "CustomerAWSAccountId": account, "LicenseArn": license}
    if quantity is not None:
        r["Quantity"] = quantity
    if decimal is not None:
        r["QuantityAsDecimal"] = decimal
    r.update(extra)
    return r


def legacy(dimension: str, ts, *, quantity=None, decimal=None, customer=BUYER_CUSTOMER_ID, **extra):
    """A UsageRecord with the legacy identity (request ProductCode + record CustomerIdentifier)."""
    r = {"Timestamp": ts, "Dimension": dimension, "CustomerIdentifier": customer}
    if quantity is not None:
        r["Quantity"] = quantity
    if decimal is not None:
        r["QuantityAsDecimal"] = decimal
    r.update(extra)
    return r


def only_result(out: dict) -> dict:
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert out["ResponseMetadata"].get("RequestId")
    assert out.get("UnprocessedRecords", []) == [], out
    assert len(out["Results"]) == 1, out
    return out["Results"][0]


def stored_by_id(server, product: str, record_id: str) -> list[dict]:
    return [r for r in server.usage_records(product) if r["metering_record_id"] == record_id]


# =============================================================================================
# BatchMeterUsage


class TestBatchMeterUsage:
    def test_license_identity_success_is_stored(self, server, seller):
        ts = hours_ago(1, batch=True)
        res = only_result(seller.batch_meter_usage(UsageRecords=[lic("requests", ts, quantity=5)]))
        assert res["Status"] == "Success"
        assert res["MeteringRecordId"]
        echoed = res["UsageRecord"]
        assert echoed["CustomerAWSAccountId"] == BUYER_ACCOUNT
        assert echoed["LicenseArn"] == BUYER_SAAS_LICENSE
        assert echoed["Dimension"] == "requests"
        assert echoed["Timestamp"] == ts
        [row] = stored_by_id(server, SAAS, res["MeteringRecordId"])
        assert row["product_code"] == SAAS
        assert row["customer_aws_account_id"] == BUYER_ACCOUNT
        assert row["license_arn"] == BUYER_SAAS_LICENSE
        assert row["dimension"] == "requests"
        assert qty(row["quantity"]) == 5
        assert row["operation"] == "BatchMeterUsage"
        assert row["hour"].startswith(hour_of(ts).strftime("%Y-%m-%dT%H:00:00"))

    def test_legacy_identity_success_is_stored(self, server, seller):
        ts = hours_ago(15, batch=True)
        res = only_result(seller.batch_meter_usage(ProductCode=SAAS, UsageRecords=[legacy("requests", ts, quantity=6)]))
        assert res["Status"] == "Success"
        assert res["UsageRecord"]["CustomerIdentifier"] == BUYER_CUSTOMER_ID
        [row] = stored_by_id(server, SAAS, res["MeteringRecordId"])
        assert row["customer_identifier"] == BUYER_CUSTOMER_ID
        assert qty(row["quantity"]) == 6

    def test_legacy_identity_retry_returns_same_id(self, seller):
        ts = hours_ago(2, batch=True)
        first = only_result(seller.batch_meter_usage(ProductCode=SAAS, UsageRecords=[legacy("users", ts, quantity=2)]))
        again = only_result(seller.batch_meter_usage(ProductCode=SAAS, UsageRecords=[legacy("users", ts, quantity=2)]))
        assert first["Status"] == again["Status"] == "Success"
        assert again["MeteringRecordId"] == first["MeteringRecordId"]

    def test_identical_retry_returns_same_record_id(self, server, seller):
        ts = hours_ago(2, batch=True)
        first = only_result(seller.batch_meter_usage(UsageRecords=[lic("requests", ts, quantity=9)]))
        again = only_result(seller.batch_meter_usage(UsageRecords=[lic("requests", ts, quantity=9)]))
        assert first["Status"] == again["Status"] == "Success"
        assert again["MeteringRecordId"] == first["MeteringRecordId"]
        assert len(stored_by_id(server, SAAS, first["MeteringRecordId"])) == 1

    def test_same_key_different_quantity_is_duplicate_record(self, server, seller):
        ts = hours_ago(3, batch=True)
        first = only_result(seller.batch_meter_usage(UsageRecords=[lic("requests", ts, quantity=10)]))
        assert first["Status"] == "Success"
        # Another timestamp inside the same hour bucket is the same key.
        later_same_hour = ts.replace(minute=59 if ts.minute != 59 else 0, second=0)
        dup = only_result(seller.batch_meter_usage(UsageRecords=[lic("requests", later_same_hour, quantity=11)]))
        assert dup["Status"] == "DuplicateRecord"
        # First write wins: the stored quantity is still the original one.
        [row] = stored_by_id(server, SAAS, first["MeteringRecordId"])
        assert qty(row["quantity"]) == 10

    def test_quantity_as_decimal_equal_by_value(self, server, seller):
        ts = hours_ago(4, batch=True)
        first = only_result(seller.batch_meter_usage(UsageRecords=[lic("requests", ts, quantity=17)]))
        again = only_result(seller.batch_meter_usage(UsageRecords=[lic("requests", ts, decimal="17.000")]))
        assert first["Status"] == again["Status"] == "Success"
        assert again["MeteringRecordId"] == first["MeteringRecordId"]
        different = only_result(seller.batch_meter_usage(UsageRecords=[lic("requests", ts, decimal="17.000001")]))
        assert different["Status"] == "DuplicateRecord"

    def test_more_than_25_records_is_validation_error(self, server, seller):
        ts = hours_ago(5, batch=True)
        records = [lic("requests", ts, quantity=1) for _ in range(26)]
        with pytest.raises(ClientError) as e:
            seller.batch_meter_usage(UsageRecords=records)
        assert_error(e, "ValidationException")
        assert server.records_where(SAAS, hour=ts, dimension="requests", license_arn=BUYER_SAAS_LICENSE) == []

    def test_25_records_are_accepted(self, seller):
        # 25 is the maximum: mixed dimensions/hours of one identity, all distinct keys.
        ts = hours_ago(6, batch=True)
        records = [lic("users", ts, quantity=1)]  # users/6 is not owned by anyone else
        # the rest are identical retries of one record (dedup answers them with the same id)
        records += [lic("requests", ts, quantity=3) for _ in range(24)]
        out = seller.batch_meter_usage(UsageRecords=records)
        assert len(out["Results"]) == 25
        assert {r["Status"] for r in out["Results"]} == {"Success"}
        ids = {r["MeteringRecordId"] for r in out["Results"][1:]}
        assert len(ids) == 1
        assert out["Results"][0]["MeteringRecordId"] not in ids

    def test_legacy_and_license_identities_are_deduplicated_independently(self, seller):
        ts = hours_ago(7, batch=True)
        a = only_result(seller.batch_meter_usage(UsageRecords=[lic("requests", ts, quantity=1)]))
        b = only_result(seller.batch_meter_usage(ProductCode=SAAS, UsageRecords=[legacy("requests", ts, quantity=2)]))
        assert a["Status"] == b["Status"] == "Success"
        assert a["MeteringRecordId"] != b["MeteringRecordId"]

    def test_session_token_seller_key(self, client_for):
        ts = hours_ago(8, batch=True)
        res = only_result(client_for("seller_session").batch_meter_usage(UsageRecords=[lic("requests", ts, quantity=1)]))
        assert res["Status"] == "Success"

    def test_empty_customer_identifier_is_absent(self, seller):
        # The Rust SDK always sends CustomerIdentifier "" next to CustomerAWSAccountId (PROTOCOL 1.1).
        ts = hours_ago(16, batch=True)
        res = only_result(seller.batch_meter_usage(UsageRecords=[lic("requests", ts, quantity=1, CustomerIdentifier="")]))
        assert res["Status"] == "Success"

    def test_fractional_timestamp(self, server, seller):
        # botocore sends sub-second datetimes as a fractional epoch number (PROTOCOL 1.2).
        ts = hours_ago(3, batch=True).replace(microsecond=123456)
        res = only_result(seller.batch_meter_usage(UsageRecords=[lic("users", ts, quantity=2)]))
        assert res["Status"] == "Success"
        [row] = stored_by_id(server, SAAS, res["MeteringRecordId"])
        assert row["hour"].startswith(hour_of(ts).strftime("%Y-%m-%dT%H:00:00"))

    def test_record_24h_old_fails_whole_batch_and_stores_nothing(self, server, seller):
        good = hours_ago(5, batch=True)
        too_old = hours_ago(25)
        with pytest.raises(ClientError) as e:
            seller.batch_meter_usage(
                UsageRecords=[lic("storage_gb", good, quantity=1), lic("storage_gb", too_old, quantity=1)]
            )
        assert_error(e, "TimestampOutOfBoundsException")
        assert server.records_where(SAAS, hour=good, dimension="storage_gb", license_arn=BUYER_SAAS_LICENSE) == []
        assert server.records_where(SAAS, hour=too_old, dimension="storage_gb") == []

    def test_unknown_dimension(self, server, seller):
        ts = hours_ago(11, batch=True)
        with pytest.raises(ClientError) as e:
            seller.batch_meter_usage(UsageRecords=[lic("requests", ts, quantity=1), lic("no-such-dimension", ts, quantity=1)])
        assert_error(e, "InvalidUsageDimensionException")
        # request-level error: the valid record was not stored either
        assert server.records_where(SAAS, hour=ts, dimension="requests", license_arn=BUYER_SAAS_LICENSE) == []

    @pytest.mark.parametrize(
        "license",
        [
            CANCELLED_SAAS_LICENSE,  # exists, but belongs to another customer
            "arn:aws:license-manager::111122223333:license/l-doesnotexist",
        ],
        ids=["other-customer", "unknown"],
    )
    def test_invalid_license(self, server, seller, license):
        ts = hours_ago(9, batch=True)
        with pytest.raises(ClientError) as e:
            seller.batch_meter_usage(UsageRecords=[lic("requests", ts, quantity=1, license=license)])
        assert_error(e, "InvalidLicenseException")
        assert server.records_where(SAAS, hour=ts, dimension="requests", customer_aws_account_id=BUYER_ACCOUNT) == []

    def test_license_of_a_non_saas_product(self, server, seller):
        # The buyer's AMI license names an AMI product, which BatchMeterUsage does not meter.
        ts = hours_ago(9, batch=True)
        with pytest.raises(ClientError) as e:
            seller.batch_meter_usage(UsageRecords=[lic("requests", ts, quantity=1, license=BUYER_AMI_LICENSE)])
        assert_error(e, "InvalidProductCodeException")
        assert server.records_where(AMI, hour=ts, dimension="requests") == []

    def test_cancelled_agreement_is_customer_not_subscribed(self, server, seller):
        ts = hours_ago(1, batch=True)
        res = only_result(
            seller.batch_meter_usage(
                UsageRecords=[lic("requests", ts, quantity=1, account=NOSUB_ACCOUNT, license=CANCELLED_SAAS_LICENSE)]
            )
        )
        assert res["Status"] == "CustomerNotSubscribed"
        assert res["UsageRecord"]["CustomerAWSAccountId"] == NOSUB_ACCOUNT
        assert server.records_where(SAAS, customer_aws_account_id=NOSUB_ACCOUNT) == []

    def test_other_sellers_product_code(self, server, seller):
        ts = hours_ago(10, batch=True)
        with pytest.raises(ClientError) as e:
            seller.batch_meter_usage(ProductCode=OTHER_SAAS, UsageRecords=[legacy("requests", ts, quantity=1)])
        assert_error(e, "InvalidProductCodeException")
        assert server.usage_records(OTHER_SAAS) == []

    def test_six_tags_is_invalid_tag(self, server, seller):
        ts = hours_ago(2, batch=True)
        tags = [{"Key": f"k{i}", "Value": "v"} for i in range(6)]
        with pytest.raises(ClientError) as e:
            seller.batch_meter_usage(
                UsageRecords=[lic("storage_gb", ts, quantity=1, UsageAllocations=[{"AllocatedUsageQuantity": 1, "Tags": tags}])]
            )
        assert_error(e, "InvalidTagException")
        assert server.records_where(SAAS, hour=ts, dimension="storage_gb", license_arn=BUYER_SAAS_LICENSE) == []

    def test_allocation_sum_mismatch(self, server, seller):
        ts = hours_ago(3, batch=True)
        allocations = [
            {"AllocatedUsageQuantity": 2, "Tags": [{"Key": "team", "Value": "a"}]},
            {"AllocatedUsageQuantity": 2, "Tags": [{"Key": "team", "Value": "b"}]},
        ]
        with pytest.raises(ClientError) as e:
            seller.batch_meter_usage(UsageRecords=[lic("storage_gb", ts, quantity=5, UsageAllocations=allocations)])
        assert_error(e, "InvalidUsageAllocationsException")
        assert server.records_where(SAAS, hour=ts, dimension="storage_gb", license_arn=BUYER_SAAS_LICENSE) == []

    def test_allocations_with_tags_are_stored(self, server, seller):
        ts = hours_ago(1, batch=True)
        allocations = [
            {"AllocatedUsageQuantity": 3, "Tags": [{"Key": "team", "Value": "red"}, {"Key": "env", "Value": "prod"}]},
            {"AllocatedUsageQuantity": 4, "Tags": [{"Key": "team", "Value": "blue"}]},
            {"AllocatedUsageQuantity": 1},
        ]
        res = only_result(seller.batch_meter_usage(UsageRecords=[lic("storage_gb", ts, quantity=8, UsageAllocations=allocations)]))
        assert res["Status"] == "Success"
        assert len(res["UsageRecord"]["UsageAllocations"]) == 3
        [row] = stored_by_id(server, SAAS, res["MeteringRecordId"])
        assert qty(row["quantity"]) == 8
        got = sorted(
            (qty(a["quantity"]), tuple(sorted((t["key"], t["value"]) for t in (a.get("tags") or []))))
            for a in row["allocations"]
        )
        assert got == sorted(
            [
                (qty(3), (("env", "prod"), ("team", "red"))),
                (qty(4), (("team", "blue"),)),
                (qty(1), ()),
            ]
        )

    def test_decimal_allocations_are_stored(self, server, seller):
        ts = hours_ago(4, batch=True)
        allocations = [
            {"AllocatedUsageQuantityAsDecimal": "1.25", "Tags": [{"Key": "team", "Value": "red"}]},
            {"AllocatedUsageQuantityAsDecimal": "0.75"},
        ]
        res = only_result(seller.batch_meter_usage(UsageRecords=[lic("storage_gb", ts, decimal="2", UsageAllocations=allocations)]))
        assert res["Status"] == "Success"
        [row] = stored_by_id(server, SAAS, res["MeteringRecordId"])
        assert qty(row["quantity"]) == 2
        assert sorted(qty(a["quantity"]) for a in row["allocations"]) == [qty("0.75"), qty("1.25")]

    def test_mixed_batch_results_in_order(self, seller):
        ts = hours_ago(12, batch=True)
        ts_users = hours_ago(1, batch=True)
        out = seller.batch_meter_usage(
            UsageRecords=[
                lic("users", ts_users, quantity=1),
                lic("requests", ts, quantity=3),
                lic("requests", ts, quantity=4, account=NOSUB_ACCOUNT, license=CANCELLED_SAAS_LICENSE),
            ]
        )
        statuses = [(r["UsageRecord"]["Dimension"], r["UsageRecord"]["CustomerAWSAccountId"], r["Status"]) for r in out["Results"]]
        assert statuses == [
            ("users", BUYER_ACCOUNT, "Success"),
            ("requests", BUYER_ACCOUNT, "Success"),
            ("requests", NOSUB_ACCOUNT, "CustomerNotSubscribed"),
        ]


# =============================================================================================
# MeterUsage


def meter(client, ts, dimension="hosts", product=AMI, **kw):
    return client.meter_usage(ProductCode=product, Timestamp=ts, UsageDimension=dimension, **kw)


class TestMeterUsage:
    def test_success_and_same_hour_same_quantity_returns_same_id(self, server, buyer_ec2):
        ts = hours_ago(0)
        first = meter(buyer_ec2, ts, UsageQuantity=4)
        assert first["MeteringRecordId"]
        assert first["ResponseMetadata"].get("RequestId")
        again = meter(buyer_ec2, ts, UsageQuantity=4)
        assert again["MeteringRecordId"] == first["MeteringRecordId"]
        [row] = stored_by_id(server, AMI, first["MeteringRecordId"])
        assert row["resource_id"] == EC2_INSTANCE
        assert row["customer_aws_account_id"] == BUYER_ACCOUNT
        assert row["dimension"] == "hosts"
        assert row["operation"] == "MeterUsage"
        assert qty(row["quantity"]) == 4

    def test_different_quantity_same_hour_is_duplicate_request(self, server, buyer_ec2):
        ts = hours_ago(1)
        first = meter(buyer_ec2, ts, UsageQuantity=1)
        with pytest.raises(ClientError) as e:
            meter(buyer_ec2, ts, UsageQuantity=2)
        assert_error(e, "DuplicateRequestException")
        [row] = stored_by_id(server, AMI, first["MeteringRecordId"])
        assert qty(row["quantity"]) == 1

    def test_decimal_quantity_equal_by_value(self, buyer_ec2):
        ts = hours_ago(4)
        first = meter(buyer_ec2, ts, UsageQuantity=3)
        again = meter(buyer_ec2, ts, UsageQuantityAsDecimal="3.000")
        assert again["MeteringRecordId"] == first["MeteringRecordId"]

    def test_client_token_retry_same_params_is_safe(self, buyer_ec2):
        ts = hours_ago(0)
        token = f"py-retry-{time.time_ns()}"
        first = meter(buyer_ec2, ts, dimension="cores", UsageQuantity=2, ClientToken=token)
        again = meter(buyer_ec2, ts, dimension="cores", UsageQuantity=2, ClientToken=token)
        assert again["MeteringRecordId"] == first["MeteringRecordId"]

    def test_client_token_reuse_with_different_params_is_409(self, server, buyer_ec2):
        token = f"py-conflict-{time.time_ns()}"
        ts1, ts2 = hours_ago(1), hours_ago(2)
        meter(buyer_ec2, ts1, dimension="cores", UsageQuantity=1, ClientToken=token)
        with pytest.raises(ClientError) as e:
            meter(buyer_ec2, ts2, dimension="cores", UsageQuantity=2, ClientToken=token)
        assert_error(e, "IdempotencyConflictException", 409)
        assert server.records_where(AMI, hour=ts2, dimension="cores", resource_id=EC2_INSTANCE) == []

    def test_unsubscribed_buyer_is_not_entitled(self, nosub_ec2):
        with pytest.raises(ClientError) as e:
            meter(nosub_ec2, hours_ago(0), UsageQuantity=1)
        assert_error(e, "CustomerNotEntitledException")

    def test_wrong_signing_region(self, client_for):
        with pytest.raises(ClientError) as e:
            meter(client_for("buyer_ec2", "us-west-2"), hours_ago(0), UsageQuantity=1)
        assert_error(e, "InvalidEndpointRegionException")

    def test_seven_hours_old_is_out_of_bounds(self, server, buyer_ec2):
        ts = hours_ago(7)
        with pytest.raises(ClientError) as e:
            meter(buyer_ec2, ts, UsageQuantity=1)
        assert_error(e, "TimestampOutOfBoundsException")
        assert server.records_where(AMI, hour=ts, resource_id=EC2_INSTANCE) == []

    def test_dry_run_stores_nothing(self, server, buyer_ec2):
        ts = hours_ago(2)
        with pytest.raises(ClientError) as e:
            meter(buyer_ec2, ts, UsageQuantity=5, DryRun=True)
        assert_error(e, "DryRunOperation")
        assert server.records_where(AMI, hour=ts, dimension="hosts", resource_id=EC2_INSTANCE) == []
        # Nothing was claimed: a real call with a different quantity now succeeds.
        real = meter(buyer_ec2, ts, UsageQuantity=6)
        [row] = stored_by_id(server, AMI, real["MeteringRecordId"])
        assert qty(row["quantity"]) == 6

    def test_dry_run_still_checks(self, nosub_ec2):
        with pytest.raises(ClientError) as e:
            meter(nosub_ec2, hours_ago(0), UsageQuantity=1, DryRun=True)
        assert_error(e, "CustomerNotEntitledException")

    def test_saas_product_is_invalid_product_code(self, buyer_ec2):
        with pytest.raises(ClientError) as e:
            meter(buyer_ec2, hours_ago(0), product=SAAS, dimension="requests", UsageQuantity=1)
        assert_error(e, "InvalidProductCodeException")

    def test_unknown_dimension(self, buyer_ec2):
        with pytest.raises(ClientError) as e:
            meter(buyer_ec2, hours_ago(0), dimension="no-such-dimension", UsageQuantity=1)
        assert_error(e, "InvalidUsageDimensionException")

    def test_allocations_are_stored(self, server, buyer_ec2):
        ts = hours_ago(3)
        res = meter(
            buyer_ec2,
            ts,
            dimension="cores",
            UsageQuantity=5,
            UsageAllocations=[
                {"AllocatedUsageQuantity": 2, "Tags": [{"Key": "team", "Value": "red"}]},
                {"AllocatedUsageQuantity": 3},
            ],
        )
        [row] = stored_by_id(server, AMI, res["MeteringRecordId"])
        assert sorted((qty(a["quantity"]), len(a.get("tags") or [])) for a in row["allocations"]) == [(2, 1), (3, 0)]

    def test_container_product_from_ecs_task_and_eks_pod(self, server, client_for):
        ts = hours_ago(1)
        ecs = meter(client_for("buyer_ecs"), ts, product=CONTAINER, dimension="vcpu", UsageQuantity=2)
        eks = meter(client_for("buyer_eks", "us-west-2"), ts, product=CONTAINER, dimension="vcpu", UsageQuantity=2)
        assert ecs["MeteringRecordId"] != eks["MeteringRecordId"]
        resources = {r["resource_id"] for r in server.records_where(CONTAINER, hour=ts, dimension="vcpu")}
        assert resources == {
            "arn:aws:ecs:us-east-1:444455556666:task/e2e/00000000000000000000000000000001",
            "e2e-pod-1",
        }


# =============================================================================================
# RegisterUsage


def b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class TestRegisterUsage:
    def test_signature_is_a_ps256_jws_that_verifies(self, server, buyer_ecs):
        before = int(time.time())
        out = buyer_ecs.register_usage(ProductCode=CONTAINER, PublicKeyVersion=1, Nonce="py-nonce-1")
        after = int(time.time())
        assert "PublicKeyRotationTimestamp" not in out  # key version 1 is current
        parts = out["Signature"].split(".")
        assert len(parts) == 3 and all(parts), out["Signature"]
        header_b64, payload_b64, sig_b64 = parts
        header = json.loads(b64url(header_b64))
        assert header["alg"] == "PS256"
        claims = json.loads(b64url(payload_b64))
        assert claims["productCode"] == CONTAINER
        assert str(claims["publicKeyVersion"]) == "1"
        assert claims["nonce"] == "py-nonce-1"
        assert isinstance(claims["iat"], int) and before - 5 <= claims["iat"] <= after + 5

        keys = {k["version"]: k for k in server.public_keys(CONTAINER)}
        assert keys[1]["retired_at"] is None
        public = serialization.load_pem_public_key(keys[1]["pem"].encode())
        # raises InvalidSignature if it does not verify
        public.verify(
            b64url(sig_b64),
            f"{header_b64}.{payload_b64}".encode(),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )
        # the JWK is the same key
        jwk = keys[1]["jwk"]
        numbers = public.public_numbers()
        assert int.from_bytes(b64url(jwk["n"]), "big") == numbers.n
        assert int.from_bytes(b64url(jwk["e"]), "big") == numbers.e
        # a tampered payload does not verify
        tampered = base64.urlsafe_b64encode(json.dumps(dict(claims, nonce="x")).encode()).rstrip(b"=").decode()
        with pytest.raises(Exception):
            public.verify(
                b64url(sig_b64),
                f"{header_b64}.{tampered}".encode(),
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256(),
            )

    def test_eks_pod_in_its_region(self, client_for):
        out = client_for("buyer_eks", "us-west-2").register_usage(ProductCode=CONTAINER, PublicKeyVersion=1, Nonce="pod")
        claims = json.loads(b64url(out["Signature"].split(".")[1]))
        assert claims["nonce"] == "pod"

    def test_unknown_public_key_version(self, buyer_ecs):
        with pytest.raises(ClientError) as e:
            buyer_ecs.register_usage(ProductCode=CONTAINER, PublicKeyVersion=99)
        assert_error(e, "InvalidPublicKeyVersionException")

    def test_ec2_platform_not_supported(self, buyer_ec2):
        with pytest.raises(ClientError) as e:
            buyer_ec2.register_usage(ProductCode=CONTAINER, PublicKeyVersion=1)
        assert_error(e, "PlatformNotSupportedException")

    def test_unsubscribed_task_not_entitled(self, nosub_ecs):
        with pytest.raises(ClientError) as e:
            nosub_ecs.register_usage(ProductCode=CONTAINER, PublicKeyVersion=1)
        assert_error(e, "CustomerNotEntitledException")

    def test_eks_pod_called_in_wrong_region(self, client_for):
        with pytest.raises(ClientError) as e:
            client_for("buyer_eks", "us-east-1").register_usage(ProductCode=CONTAINER, PublicKeyVersion=1)
        assert_error(e, "InvalidRegionException")

    def test_non_container_product(self, buyer_ecs):
        with pytest.raises(ClientError) as e:
            buyer_ecs.register_usage(ProductCode=AMI, PublicKeyVersion=1)
        assert_error(e, "InvalidProductCodeException")


# =============================================================================================
# ResolveCustomer


class TestResolveCustomer:
    def test_token_resolves_and_resolves_again(self, server, seller):
        token = server.registration_token(SAAS, BUYER_ACCOUNT)
        for _ in range(2):
            out = seller.resolve_customer(RegistrationToken=token)
            assert out["CustomerIdentifier"] == BUYER_CUSTOMER_ID
            assert out["CustomerAWSAccountId"] == BUYER_ACCOUNT
            assert out["ProductCode"] == SAAS
            assert out["LicenseArn"] == BUYER_SAAS_LICENSE
            assert out["Metadata"]["AgreementId"] == BUYER_SAAS_AGREEMENT

    def test_resolved_license_meters(self, server, seller):
        """The documented flow: resolve, then meter with the returned account and license."""
        out = seller.resolve_customer(RegistrationToken=server.registration_token(SAAS, BUYER_ACCOUNT))
        ts = hours_ago(13, batch=True)
        res = only_result(
            seller.batch_meter_usage(
                UsageRecords=[
                    {
                        "Timestamp": ts,
                        "Dimension": "requests",
                        "CustomerAWSAccountId": out["CustomerAWSAccountId"],
                        "LicenseArn": out["LicenseArn"],
                        "Quantity": 1,
                    }
                ]
            )
        )
        assert res["Status"] == "Success"

    def test_other_sellers_key(self, server, other_seller):
        token = server.registration_token(SAAS, BUYER_ACCOUNT)
        with pytest.raises(ClientError) as e:
            other_seller.resolve_customer(RegistrationToken=token)
        assert_error(e, "InvalidTokenException")

    def test_garbage_token(self, seller):
        with pytest.raises(ClientError) as e:
            seller.resolve_customer(RegistrationToken="this-is-not-a-registration-token")
        assert_error(e, "InvalidTokenException")


# =============================================================================================
# Authentication


def _resolve(client):
    return client.resolve_customer(RegistrationToken="whatever")


class TestAuthentication:
    def test_wrong_secret(self, server):
        c = boto3.client(
            "meteringmarketplace",
            endpoint_url=server.url,
            region_name=REGION,
            aws_access_key_id="AKIAE2ESELLER0000001",
            aws_secret_access_key="not-the-secret",
            config=Config(retries={"total_max_attempts": 1}),
        )
        with pytest.raises(ClientError) as e:
            _resolve(c)
        assert_error(e, "InvalidSignatureException", 403)

    def test_unknown_access_key(self, server):
        c = boto3.client(
            "meteringmarketplace",
            endpoint_url=server.url,
            region_name=REGION,
            aws_access_key_id="AKIANOSUCHKEY0000000",
            aws_secret_access_key="x",
            config=Config(retries={"total_max_attempts": 1}),
        )
        with pytest.raises(ClientError) as e:
            _resolve(c)
        assert_error(e, "UnrecognizedClientException", 403)

    def test_session_key_without_session_token(self, server):
        with pytest.raises(ClientError) as e:
            _resolve(make_client(server, "seller_session", session_token=None))
        assert_error(e, "UnrecognizedClientException", 403)

    def test_session_key_with_wrong_session_token(self, server):
        with pytest.raises(ClientError) as e:
            _resolve(make_client(server, "buyer_ec2", session_token="not-the-token"))
        code = e.value.response["Error"]["Code"]
        assert code in ("UnrecognizedClientException", "InvalidSignatureException"), e.value.response
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    def test_unsigned_request(self, server):
        c = boto3.client(
            "meteringmarketplace",
            endpoint_url=server.url,
            region_name=REGION,
            config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}),
        )
        with pytest.raises(ClientError) as e:
            _resolve(c)
        assert_error(e, "MissingAuthenticationTokenException", 403)

    def test_endpoint_from_environment_variable(self, server, monkeypatch):
        """SDKs reach the server through AWS_ENDPOINT_URL_MARKETPLACE_METERING alone."""
        monkeypatch.setenv("AWS_ENDPOINT_URL_MARKETPLACE_METERING", server.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAE2ESELLER0000001")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "seller-secret")
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        c = boto3.session.Session().client("meteringmarketplace", config=Config(retries={"total_max_attempts": 1}))
        assert c.meta.endpoint_url == server.url
        token = server.registration_token(SAAS, BUYER_ACCOUNT)
        assert c.resolve_customer(RegistrationToken=token)["CustomerAWSAccountId"] == BUYER_ACCOUNT
