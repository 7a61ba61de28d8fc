"""Raw HTTP (http.client, no SDK) against a server started with --auth open.

Bad input must always produce a clean awsJson error: the right status, body `__type` equal to the
`x-amzn-ErrorType` header, a `message`, and an `x-amzn-RequestId` -- never a 500 or HTML.
"""

from __future__ import annotations

import http.client
import json

import pytest

from conftest import BUYER_ACCOUNT, BUYER_SAAS_LICENSE, SAAS

JSON_11 = "application/x-amz-json-1.1"
PREFIX = "AWSMPMeteringService."


def send(server, body: bytes | None, *, target: str | None = PREFIX + "MeterUsage", content_type: str | None = JSON_11,
         method: str = "POST", path: str = "/", headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    h = dict(headers or {})
    if target is not None:
        h["X-Amz-Target"] = target
    if content_type is not None:
        h["Content-Type"] = content_type
    try:
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def assert_awsjson_error(status, headers, data, expected_status, expected_type):
    assert b"<html" not in data.lower(), data[:200]
    assert status == expected_status, (status, headers, data[:500])
    assert headers.get("content-type", "").startswith(JSON_11), headers
    assert headers.get("x-amzn-requestid"), headers
    doc = json.loads(data)
    assert doc["__type"] == expected_type, doc
    assert headers.get("x-amzn-errortype") == doc["__type"], (headers, doc)
    assert isinstance(doc.get("message"), str) and doc["message"], doc
    return doc


def test_malformed_json(open_server):
    assert_awsjson_error(*send(open_server, b'{"ProductCode": "e2e-ami",'), 400, "SerializationException")


def test_not_an_object(open_server):
    assert_awsjson_error(*send(open_server, b"[1, 2, 3]"), 400, "SerializationException")


def test_invalid_utf8(open_server):
    assert_awsjson_error(*send(open_server, b'{"ProductCode": "\xff\xfe"}'), 400, "SerializationException")


def test_timestamp_as_string(open_server):
    body = json.dumps({"ProductCode": "e2e-ami", "Timestamp": "2026-11-23T00:00:00Z", "UsageDimension": "hosts", "UsageQuantity": 1})
    assert_awsjson_error(*send(open_server, body.encode()), 400, "SerializationException")


def test_quantity_as_string(open_server):
    body = json.dumps({"ProductCode": "e2e-ami", "Timestamp": 1700000000, "UsageDimension": "hosts", "UsageQuantity": "1"})
    assert_awsjson_error(*send(open_server, body.encode()), 400, "SerializationException")


def test_unknown_target(open_server):
    assert_awsjson_error(*send(open_server, b"{}", target=PREFIX + "DeleteEverything"), 400, "UnknownOperationException")


def test_target_of_another_service(open_server):
    assert_awsjson_error(*send(open_server, b"{}", target="DynamoDB_20120810.ListTables"), 400, "UnknownOperationException")


def test_missing_target(open_server):
    assert_awsjson_error(*send(open_server, b"{}", target=None), 400, "UnknownOperationException")


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", None])
def test_wrong_content_type(open_server, content_type):
    body = b'{"RegistrationToken": "x"}'
    status, headers, data = send(open_server, body, target=PREFIX + "ResolveCustomer", content_type=content_type)
    assert_awsjson_error(status, headers, data, 400, "SerializationException")


def test_body_over_one_megabyte(open_server):
    # One record with a > 1 MB dimension: the body is well-formed JSON, only too large.
    body = json.dumps({"ProductCode": "e2e-ami", "Timestamp": 1700000000, "UsageDimension": "d" * (1024 * 1024 + 16)}).encode()
    assert len(body) > 1024 * 1024
    # README: 413 RequestEntityTooLargeException (changed from ValidationException in 78d6075).
    assert_awsjson_error(*send(open_server, body), 413, "RequestEntityTooLargeException")


def test_get_unknown_path_is_json(open_server):
    status, headers, data = send(open_server, None, target=None, content_type=None, method="GET", path="/foo")
    assert_awsjson_error(status, headers, data, 400, "UnknownOperationException")


def test_missing_required_member_is_validation(open_server):
    assert_awsjson_error(*send(open_server, b'{"UsageDimension": "hosts"}'), 400, "ValidationException")


def test_empty_body_is_accepted_as_empty_object(open_server):
    # An empty body means {} (awsJson); ResolveCustomer then lacks its required token.
    status, headers, data = send(open_server, b"", target=PREFIX + "ResolveCustomer")
    assert_awsjson_error(status, headers, data, 400, "ValidationException")


def test_request_ids_are_unique(open_server):
    ids = {send(open_server, b"{", target=PREFIX + "MeterUsage")[1]["x-amzn-requestid"] for _ in range(5)}
    assert len(ids) == 5


def test_success_response_framing(open_server):
    """Open mode accepts unsigned requests; the success response is awsJson too."""
    token = open_server.registration_token(SAAS, BUYER_ACCOUNT)
    status, headers, data = send(
        open_server, json.dumps({"RegistrationToken": token}).encode(), target=PREFIX + "ResolveCustomer"
    )
    assert status == 200, data
    assert headers["content-type"].startswith(JSON_11)
    assert headers.get("x-amzn-requestid")
    assert "x-amzn-errortype" not in headers
    doc = json.loads(data)
    assert doc["CustomerAWSAccountId"] == BUYER_ACCOUNT
    assert doc["LicenseArn"] == BUYER_SAAS_LICENSE


def test_unknown_members_are_ignored(open_server):
    """Newer SDKs may send members this model does not know yet; they are ignored."""
    token = open_server.registration_token(SAAS, BUYER_ACCOUNT)
    body = json.dumps({"RegistrationToken": token, "SomeFutureMember": {"x": [1, 2]}}).encode()
    status, headers, data = send(open_server, body, target=PREFIX + "ResolveCustomer")
    assert status == 200, data
    assert json.loads(data)["CustomerAWSAccountId"] == BUYER_ACCOUNT


def test_fractional_and_exponent_timestamps_parse(open_server):
    """Timestamps are JSON numbers: integers, fractions and exponent notation all parse."""
    for ts in ("1700000000", "1700000000.25", "1.7e9"):
        body = ('{"ProductCode":"e2e-ami","Timestamp":%s,"UsageDimension":"hosts","UsageQuantity":1}' % ts).encode()
        status, headers, data = send(open_server, body)
        # 2023-11-14 is long past the 6 h window: a parsed timestamp, rejected by the rule.
        assert_awsjson_error(status, headers, data, 400, "TimestampOutOfBoundsException")
