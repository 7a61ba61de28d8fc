"""Bad input over raw HTTP: always a clean awsJson error, never a 500 or HTML."""

import http.client
import json
import urllib.parse

import pytest

TARGET = "AWSMPMeteringService.MeterUsage"
JSON = "application/x-amz-json-1.1"


def send(server, body, target=TARGET, content_type=JSON, method="POST", path="/"):
    u = urllib.parse.urlparse(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    headers = {}
    if target:
        headers["X-Amz-Target"] = target
    if content_type:
        headers["Content-Type"] = content_type
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp, data


@pytest.mark.parametrize("body,target,content_type,status,expected", [
    (b"{not json", TARGET, JSON, 400, "SerializationException"),
    (b'{"ProductCode":"e2e-ami","Timestamp":"soon","UsageDimension":"hosts"}', TARGET, JSON, 400, "SerializationException"),
    (b'{"ProductCode":"e2e-ami","Timestamp":1e400,"UsageDimension":"hosts"}', TARGET, JSON, 400, "SerializationException"),
    (b"[1,2,3]", TARGET, JSON, 400, "SerializationException"),
    (b'{"UsageDimension":"hosts"}', TARGET, JSON, 400, "ValidationException"),
    (b"{}", "AWSMPMeteringService.Nope", JSON, 400, "UnknownOperationException"),
    (b"{}", None, JSON, 400, "UnknownOperationException"),
    (b"{}", TARGET, "text/plain", 400, "SerializationException"),
    (b"\xff\xfe\x00garbage", TARGET, JSON, 400, "SerializationException"),
    (b"x" * (1024 * 1024 + 1), TARGET, JSON, 413, "RequestEntityTooLargeException"),
])
def test_bad_input_is_a_clean_awsjson_error(open_server, body, target, content_type, status, expected):
    resp, data = send(open_server, body, target, content_type)
    assert resp.status == status
    assert resp.getheader("Content-Type") == JSON
    assert resp.getheader("x-amzn-RequestId")
    doc = json.loads(data)
    assert doc["__type"] == expected == resp.getheader("x-amzn-ErrorType")
    assert doc["message"]


def test_unknown_paths_answer_json(open_server):
    resp, data = send(open_server, None, target=None, content_type=None, method="GET", path="/foo")
    assert resp.status == 400
    assert json.loads(data)["__type"] == "UnknownOperationException"
    assert b"<html" not in data.lower()


def test_open_mode_serves_unsigned_requests(open_server):
    resp, data = send(open_server, b'{"ProductCode":"e2e-ami","Timestamp":1,"UsageDimension":"hosts"}')
    doc = json.loads(data)
    assert doc["__type"] == "TimestampOutOfBoundsException", doc
