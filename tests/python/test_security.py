"""Security at the HTTP level, against the real binary with SigV4 verification on.

* Negative SigV4: requests crafted with botocore's own signer and then broken in one way each
  (scope, clock, signed headers, body, session token, key) are refused with the right awsJson
  error and status, and store nothing. The happy-path twin of every case succeeds, so a case can
  only pass because of the one thing it breaks.
* Tenant isolation: a seller cannot meter another seller's products or licenses, nor resolve its
  tokens; buyer workload credentials cannot call seller operations and seller keys cannot call
  workload operations.
* Admin API: refused without, or with a wrong, bearer token; refused calls change nothing.
* Secrets (secret keys, session tokens, the admin token, the database password) appear neither in
  error messages, nor in admin listings, nor in the server's debug log.

The wire-level unit cases live in crates/sigv4/tests/verify.rs; the SDK-level ones (wrong secret,
unknown key, missing/wrong session token, unsigned) in test_boto3.py::TestAuthentication.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import json
import re

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import (
    ADMIN_TOKEN,
    BUYER_ACCOUNT,
    BUYER_SAAS_LICENSE,
    CREDS,
    OTHER_SAAS,
    REGION,
    SAAS,
    AMI,
    _start,
    assert_error,
    epoch,
    hours_ago,
    make_client,
)

JSON_11 = "application/x-amz-json-1.1"
TARGET = "AWSMPMeteringService."

# ---------------------------------------------------------------------------------------------
# Crafting signed requests


class _NoHostSigV4(SigV4Auth):
    """botocore's signer, minus `host` in SignedHeaders (everything else signed as usual)."""

    def headers_to_sign(self, request):
        headers = super().headers_to_sign(request)
        del headers["host"]
        return headers


class Signed:
    """One request as signed by botocore: method POST /, headers, body."""

    def __init__(self, server, target: str, body: dict | bytes, who: str = "seller", *, region: str = REGION,
                 service: str = "aws-marketplace", at: dt.datetime | None = None, secret: str | None = None,
                 session_token: object = "default", signer=SigV4Auth, access_key: str | None = None):
        key, real_secret, token = CREDS[who]
        if session_token != "default":
            token = session_token
        self.server = server
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = AWSRequest(
            method="POST",
            url=server.url + "/",
            data=self.body,
            headers={"Content-Type": JSON_11, "X-Amz-Target": TARGET + target},
        )
        creds = Credentials(access_key or key, secret or real_secret, token)
        original = botocore.auth.get_current_datetime
        if at is not None:
            botocore.auth.get_current_datetime = lambda: at.replace(tzinfo=None)
        try:
            signer(creds, service, region).add_auth(req)
        finally:
            botocore.auth.get_current_datetime = original
        self.headers = {k: v for k, v in req.headers.items()}
        # botocore signs the URL's host:port but leaves the header to the HTTP layer.
        self.headers.setdefault("Host", server.url.split("://", 1)[1])

    def header(self, name: str) -> str:
        return next(v for k, v in self.headers.items() if k.lower() == name.lower())

    def set(self, name: str, value: str | None) -> "Signed":
        for k in [k for k in self.headers if k.lower() == name.lower()]:
            del self.headers[k]
        if value is not None:
            self.headers[name] = value
        return self

    def send(self, body: bytes | None = None):
        """(status, lower-case headers, parsed JSON body) of sending it as is."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            # skip_host: the Host header is exactly the one that was signed (or set by a test).
            conn.putrequest("POST", "/", skip_host=True, skip_accept_encoding=True)
            data = self.body if body is None else body
            headers = dict(self.headers)
            headers["Content-Length"] = str(len(data))
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.endheaders(data)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(raw or b"{}")
        finally:
            conn.close()


def refused(result, code: str, status: int = 403, message: str | None = None) -> dict:
    got_status, headers, doc = result
    assert (got_status, doc.get("__type")) == (status, code), (got_status, doc)
    assert headers.get("x-amzn-errortype") == code, headers
    assert headers.get("x-amzn-requestid"), headers
    if message is not None:
        assert re.search(message, doc["message"]), doc
    assert_no_secret(json.dumps(doc))
    return doc


# The one slot these tests would write if a forged request got through (see conftest SLOTS).
def _slot_record() -> dict:
    return {
        "Timestamp": epoch(hours_ago(20, batch=True)),
        "CustomerAWSAccountId": BUYER_ACCOUNT,
        "LicenseArn": BUYER_SAAS_LICENSE,
        "Dimension": "users",
        "Quantity": 7,
    }


# Stores nothing and succeeds when the request is authentic.
EMPTY_BATCH = {"ProductCode": SAAS, "UsageRecords": []}


def _batch() -> dict:
    return {"UsageRecords": [_slot_record()]}


def _dry_run_meter() -> dict:
    # Its own slot (conftest SLOTS): a dry run answers DuplicateRequest where a record exists.
    return {"ProductCode": AMI, "Timestamp": epoch(hours_ago(5)), "UsageDimension": "cores", "UsageQuantity": 1,
            "DryRun": True}


SECRETS = sorted({s for (_, secret, token) in CREDS.values() for s in (secret, token) if s} | {ADMIN_TOKEN})


def assert_no_secret(text: str, extra: tuple[str, ...] = ()) -> None:
    for s in (*SECRETS, *extra):
        assert s not in text, f"secret {s!r} leaked into: {text[:300]}"


# ---------------------------------------------------------------------------------------------
# Negative SigV4 suite


class TestForgedSignatures:
    def test_the_control_request_is_accepted(self, server):
        # A dry run proves the signing helper itself is right (and stores nothing).
        assert refused(Signed(server, "MeterUsage", _dry_run_meter(), "buyer_ec2").send(),
                       "DryRunOperation", 400)
        status, _, doc = Signed(server, "BatchMeterUsage", EMPTY_BATCH).send()
        assert status == 200, doc

    def test_wrong_secret(self, server):
        refused(Signed(server, "BatchMeterUsage", _batch(), secret="not-the-secret").send(),
                "InvalidSignatureException", message="signature we calculated does not match")

    @pytest.mark.parametrize("part,forged", [("/us-east-1/", "/us-west-2/"), ("/aws-marketplace/", "/execute-api/")])
    def test_scope_edited_after_signing(self, server, part, forged):
        s = Signed(server, "BatchMeterUsage", _batch())
        s.set("Authorization", s.header("Authorization").replace(part, forged))
        refused(s.send(), "InvalidSignatureException")

    def test_scope_date_differs_from_request_date(self, server):
        s = Signed(server, "BatchMeterUsage", _batch())
        day = s.header("X-Amz-Date")[:8]
        yesterday = (dt.datetime.strptime(day, "%Y%m%d") - dt.timedelta(days=1)).strftime("%Y%m%d")
        s.set("Authorization", s.header("Authorization").replace(f"/{day}/", f"/{yesterday}/"))
        refused(s.send(), "InvalidSignatureException", message="Date in Credential scope")

    def test_signed_for_another_service(self, server):
        refused(Signed(server, "BatchMeterUsage", _batch(), service="execute-api").send(),
                "InvalidSignatureException", message="aws-marketplace")

    def test_signed_for_another_region_with_a_valid_signature_is_accepted(self, server):
        # The scope's region is the region the client called; a seller may meter from any.
        status, _, doc = Signed(server, "BatchMeterUsage", EMPTY_BATCH, region="eu-west-1").send()
        assert status == 200, doc

    @pytest.mark.parametrize("minutes,ok", [(-14, True), (14, True), (-16, False), (16, False), (-24 * 60, False)])
    def test_clock_skew(self, server, minutes, ok):
        at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes)
        body = EMPTY_BATCH if ok else _batch()
        result = Signed(server, "BatchMeterUsage", body, at=at).send()
        if ok:
            assert result[0] == 200, result
        else:
            refused(result, "InvalidSignatureException",
                    message="Signature expired" if minutes < 0 else "Signature not yet current")

    def test_host_not_signed(self, server):
        s = Signed(server, "BatchMeterUsage", _batch(), signer=_NoHostSigV4)
        assert "host" not in s.header("Authorization").split("SignedHeaders=")[1].split(",")[0].split(";")
        refused(s.send(), "InvalidSignatureException", message="'Host' must be a signed header")

    def test_host_changed_after_signing(self, server):
        s = Signed(server, "BatchMeterUsage", _batch())
        s.set("Host", "metering.marketplace.us-east-1.amazonaws.com")
        refused(s.send(), "InvalidSignatureException")

    def test_body_changed_after_signing(self, server):
        s = Signed(server, "BatchMeterUsage", EMPTY_BATCH)
        refused(s.send(json.dumps(_batch()).encode()), "InvalidSignatureException")

    def test_target_changed_after_signing(self, server):
        s = Signed(server, "MeterUsage", _dry_run_meter(), "buyer_ec2")
        s.set("X-Amz-Target", TARGET + "RegisterUsage")
        refused(s.send(), "InvalidSignatureException")

    def test_lying_payload_hash(self, server):
        s = Signed(server, "BatchMeterUsage", _batch())
        s.set("X-Amz-Content-Sha256", "0" * 64)
        refused(s.send(), "InvalidSignatureException")

    def test_signed_session_token_stripped(self, server):
        s = Signed(server, "MeterUsage", _dry_run_meter(), "buyer_ec2")
        s.set("X-Amz-Security-Token", None)
        refused(s.send(), "InvalidSignatureException")

    def test_session_token_missing(self, server):
        refused(Signed(server, "MeterUsage", _dry_run_meter(), "buyer_ec2", session_token=None).send(),
                "UnrecognizedClientException", message="security token")

    def test_session_token_wrong(self, server):
        refused(Signed(server, "MeterUsage", _dry_run_meter(), "buyer_ec2", session_token="forged").send(),
                "UnrecognizedClientException", message="security token")

    def test_session_token_on_a_long_term_key(self, server):
        refused(Signed(server, "BatchMeterUsage", _batch(), session_token="made-up").send(),
                "UnrecognizedClientException")

    def test_unknown_access_key(self, server):
        refused(Signed(server, "BatchMeterUsage", _batch(), access_key="AKIANOSUCHKEY0000000").send(),
                "UnrecognizedClientException")

    def test_revoked_and_rotated_keys(self, server):
        status, key = server.admin("POST", "/admin/v1/access-keys", {"account": "111122223333"})
        assert status == 201, key
        kid, secret = key["access_key_id"], key["secret_access_key"]
        use = lambda k, s: Signed(server, "BatchMeterUsage", EMPTY_BATCH, access_key=k, secret=s).send()  # noqa: E731
        assert use(kid, secret)[0] == 200
        status, rotated = server.admin("POST", f"/admin/v1/access-keys/{kid}/rotate")
        assert status == 201, rotated
        new = rotated["access_key"]
        refused(use(kid, secret), "UnrecognizedClientException")
        assert use(new["access_key_id"], new["secret_access_key"])[0] == 200
        assert server.admin("DELETE", f"/admin/v1/access-keys/{new['access_key_id']}")[0] == 204
        refused(use(new["access_key_id"], new["secret_access_key"]), "UnrecognizedClientException")
        # The secret of a revoked key under another (valid) key id is just a wrong secret.
        refused(Signed(server, "BatchMeterUsage", EMPTY_BATCH, secret=new["secret_access_key"]).send(),
                "InvalidSignatureException")

    def test_no_authorization(self, server):
        s = Signed(server, "BatchMeterUsage", _batch())
        s.set("Authorization", None)
        refused(s.send(), "MissingAuthenticationTokenException")

    @pytest.mark.parametrize("mangle", [
        lambda a: a.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
        lambda a: a.split(", Signature=")[0],
        lambda a: re.sub(r"SignedHeaders=[^,]*, ", "", a),
        lambda a: re.sub(r"Signature=[0-9a-f]+", "Signature=xyz", a),
        lambda a: a.replace("/aws4_request", ""),
        lambda a: "Bearer " + ADMIN_TOKEN,
    ], ids=["algorithm", "no-signature", "no-signed-headers", "signature-not-hex", "scope-short", "bearer"])
    def test_malformed_authorization(self, server, mangle):
        s = Signed(server, "BatchMeterUsage", _batch())
        s.set("Authorization", mangle(s.header("Authorization")))
        refused(s.send(), "IncompleteSignatureException")

    @pytest.mark.parametrize("date", [None, "yesterday", "20261301T000000Z"])
    def test_missing_or_malformed_date(self, server, date):
        s = Signed(server, "BatchMeterUsage", _batch())
        s.set("X-Amz-Date", date)
        refused(s.send(), "IncompleteSignatureException")

    def test_nothing_forged_was_stored(self, server):
        # Runs after the cases above (file order): every forged request aimed at this one slot.
        hour = hours_ago(20, batch=True).replace(minute=0, second=0)
        assert server.records_where(SAAS, hour=hour, dimension="users", customer_aws_account_id=BUYER_ACCOUNT) == []


# ---------------------------------------------------------------------------------------------
# Tenant isolation


class TestTenantIsolation:
    def test_seller_cannot_meter_another_sellers_license(self, server, other_seller):
        # The records name seller 111122223333's license; the caller is seller 999988887777.
        with pytest.raises(ClientError) as e:
            other_seller.batch_meter_usage(UsageRecords=[_slot_record()])
        assert_error(e, "InvalidProductCodeException")
        assert_no_secret(json.dumps(e.value.response["Error"]))

    def test_seller_cannot_meter_another_sellers_product_code(self, server, other_seller):
        rec = dict(_slot_record())
        del rec["LicenseArn"], rec["CustomerAWSAccountId"]
        rec["CustomerIdentifier"] = "cust-e2e-buyer"
        with pytest.raises(ClientError) as e:
            other_seller.batch_meter_usage(ProductCode=SAAS, UsageRecords=[rec])
        assert_error(e, "InvalidProductCodeException")

    def test_seller_cannot_resolve_another_sellers_token(self, server, seller, other_seller):
        token = server.registration_token(OTHER_SAAS, BUYER_ACCOUNT)
        with pytest.raises(ClientError) as e:
            seller.resolve_customer(RegistrationToken=token)
        assert_error(e, "InvalidTokenException")
        # The owner still resolves it: the refusal was about the caller, not the token.
        assert other_seller.resolve_customer(RegistrationToken=token)["ProductCode"] == OTHER_SAAS

    @pytest.mark.parametrize("who", ["buyer_ec2", "buyer_ecs", "buyer_plain"])
    def test_buyer_credentials_cannot_batch_meter(self, server, client_for, who):
        with pytest.raises(ClientError) as e:
            client_for(who).batch_meter_usage(UsageRecords=[_slot_record()])
        assert_error(e, "InvalidProductCodeException")

    @pytest.mark.parametrize("who", ["buyer_ec2", "buyer_plain"])
    def test_buyer_credentials_cannot_resolve_customers(self, server, client_for, who):
        token = server.registration_token(SAAS, BUYER_ACCOUNT)
        with pytest.raises(ClientError) as e:
            client_for(who).resolve_customer(RegistrationToken=token)
        assert_error(e, "InvalidTokenException")

    def test_seller_key_cannot_meter_usage_as_a_workload(self, server, seller):
        with pytest.raises(ClientError) as e:
            seller.meter_usage(**{k: v for k, v in _dry_run_meter().items() if k != "DryRun"})
        assert_error(e, "AccessDeniedException", 403)

    def test_workload_cannot_meter_a_product_it_is_not_entitled_to(self, server, client_for):
        with pytest.raises(ClientError) as e:
            client_for("nosub_ec2").meter_usage(ProductCode=AMI, Timestamp=hours_ago(0), UsageDimension="hosts",
                                                UsageQuantity=1)
        assert_error(e, "CustomerNotEntitledException")
        with pytest.raises(ClientError) as e:
            client_for("nosub_ecs").register_usage(ProductCode="e2e-container", PublicKeyVersion=1)
        assert_error(e, "CustomerNotEntitledException")

    def test_nothing_was_stored_for_any_refusal(self, server):
        hour = hours_ago(20, batch=True).replace(minute=0, second=0)
        assert server.records_where(SAAS, hour=hour, dimension="users") == []
        assert server.records_where(AMI, resource_id="i-0e2e0000000000099") == []
        assert server.records_where(AMI, hour=hours_ago(5), dimension="cores") == []


# ---------------------------------------------------------------------------------------------
# Admin API


# One call of every admin route (README "Endpoints"), each of which would change or reveal state.
ADMIN_CALLS = [
    ("GET", "/admin/v1/usage-records?product_code=e2e-saas", None),
    ("POST", "/admin/v1/registration-tokens", {"product_code": SAAS, "customer_aws_account_id": BUYER_ACCOUNT}),
    ("GET", "/admin/v1/products/e2e-container/public-keys", None),
    ("POST", "/admin/v1/products/e2e-container/public-keys", None),
    ("POST", "/admin/v1/products/e2e-container/public-keys/1/retire", None),
    ("GET", "/admin/v1/accounts", None),
    ("GET", "/admin/v1/accounts/111122223333", None),
    ("PUT", "/admin/v1/accounts/123123123123", {"name": "intruder"}),
    ("GET", "/admin/v1/access-keys", None),
    ("POST", "/admin/v1/access-keys", {"account": "111122223333"}),
    ("POST", "/admin/v1/access-keys/AKIAE2ESELLER0000001/rotate", None),
    ("DELETE", "/admin/v1/access-keys/AKIAE2ESELLER0000001", None),
    ("GET", "/admin/v1/products", None),
    ("GET", "/admin/v1/products/e2e-saas", None),
    ("PUT", "/admin/v1/products/intruder-saas", {"seller": "111122223333", "kind": "saas", "dimensions": [{"name": "x"}]}),
    ("DELETE", "/admin/v1/products/other-saas", None),
    ("GET", "/admin/v1/agreements", None),
    ("POST", "/admin/v1/agreements", {"product_code": SAAS, "customer_aws_account_id": "123123123123"}),
    ("GET", "/admin/v1/agreements/agmt-e2e-saas-buyer", None),
    ("POST", "/admin/v1/agreements/agmt-e2e-saas-buyer/cancel", None),
    ("GET", "/admin/v1/customers?product_code=e2e-saas", None),
    ("POST", "/admin/v1/catalog", {"accounts": [{"id": "123123123123"}]}),
    ("POST", "/admin/v1/subscriptions", {"product_code": SAAS, "customer_aws_account_id": "123123123123"}),
    ("POST", "/admin/v1/subscriptions/cancel", {"product_code": SAAS, "customer_aws_account_id": BUYER_ACCOUNT}),
    ("GET", "/admin/v1/notifications", None),
    ("GET", "/admin/v1/container-sessions", None),
    ("POST", "/admin/v1/container-sessions/stop", {"product_code": "e2e-container", "resource_id": "e2e-pod-1"}),
]

# Listings whose contents must not change through refused calls.
ADMIN_STATE = ["/admin/v1/accounts", "/admin/v1/access-keys", "/admin/v1/products", "/admin/v1/agreements",
               "/admin/v1/products/e2e-container/public-keys", "/admin/v1/notifications",
               "/admin/v1/container-sessions"]

BAD_AUTHORIZATIONS = [
    None,
    "",
    "Bearer",
    "Bearer ",
    f"Bearer {ADMIN_TOKEN[:-1]}",
    f"Bearer {ADMIN_TOKEN}x",
    f"Bearer {ADMIN_TOKEN.upper()}",
    f"bearer{ADMIN_TOKEN}",
    f"Basic {ADMIN_TOKEN}",
    ADMIN_TOKEN,
]


def _admin_raw(server, method, path, body, authorization):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


class TestAdminApi:
    def test_refused_without_the_right_token_and_changes_nothing(self, server):
        before = {path: server.admin("GET", path) for path in ADMIN_STATE}
        for method, path, body in ADMIN_CALLS:
            for authorization in BAD_AUTHORIZATIONS:
                status, doc = _admin_raw(server, method, path, body, authorization)
                assert (status, doc.get("error", {}).get("code")) == (401, "Unauthorized"), (path, authorization, doc)
                assert_no_secret(json.dumps(doc))
        for path, state in before.items():
            assert state[0] == 200, (path, state)
            assert server.admin("GET", path) == state, f"a refused call changed {path}"

    def test_the_right_token_is_accepted(self, server):
        status, doc = _admin_raw(server, *ADMIN_CALLS[0][:2], None, f"Bearer {ADMIN_TOKEN}")
        assert status == 200 and "records" in doc, doc

    def test_listings_carry_no_secrets(self, server):
        for path in ["/admin/v1/usage-records?limit=100000", "/admin/v1/access-keys", "/admin/v1/accounts",
                     "/admin/v1/products", "/admin/v1/agreements", "/admin/v1/customers?product_code=e2e-saas"]:
            status, doc = _admin_raw(server, "GET", path, None, f"Bearer {ADMIN_TOKEN}")
            assert status == 200, (path, doc)
            assert_no_secret(json.dumps(doc))
        keys = server.admin("GET", "/admin/v1/access-keys")[1]["access_keys"]
        assert {k["access_key_id"] for k in keys} >= {c[0] for c in CREDS.values()}, "the listing is not the keys"
        keys = json.dumps(server.public_keys("e2e-container"))
        assert "PRIVATE" not in keys and '"d"' not in keys, "public-key listing exposes private key material"


# ---------------------------------------------------------------------------------------------
# Secrets in the debug log


# On PostgreSQL runs the --db URL carries it (trust authentication never asks for it).
DB_PASSWORD = "db-pass-never-logged-4711"


@pytest.fixture(scope="module")
def debug_server(marketmeter_bin):
    srv, tmp = _start(marketmeter_bin, [], "debuglog", log="debug", db_password=DB_PASSWORD)
    yield srv
    srv.stop()
    tmp.cleanup()


def test_debug_log_carries_no_secrets(debug_server):
    srv = debug_server
    # Successful and failing calls with every kind of secret in play.
    seller = make_client(srv, "seller")
    assert seller.batch_meter_usage(ProductCode=SAAS, UsageRecords=[])["Results"] == []
    token = srv.registration_token(SAAS, BUYER_ACCOUNT)
    assert seller.resolve_customer(RegistrationToken=token)["CustomerAWSAccountId"] == BUYER_ACCOUNT
    make_client(srv, "seller_session").batch_meter_usage(ProductCode=SAAS, UsageRecords=[])
    with pytest.raises(ClientError):
        make_client(srv, "buyer_ec2").meter_usage(ProductCode=AMI, Timestamp=hours_ago(0), UsageDimension="hosts",
                                                  UsageQuantity=1, DryRun=True)
    with pytest.raises(ClientError):
        make_client(srv, "buyer_ec2", session_token="forged-session-token-0815").resolve_customer(RegistrationToken=token)
    Signed(srv, "BatchMeterUsage", _batch(), secret="forged-secret-0815").send()
    for authorization in (f"Bearer {ADMIN_TOKEN}x", f"Bearer {ADMIN_TOKEN}"):
        _admin_raw(srv, "GET", "/admin/v1/usage-records", None, authorization)

    log = srv.stderr_path.read_text(errors="replace")
    # The log level really was debug: the rejected requests were logged.
    assert "request rejected" in log, log[-2000:]
    assert_no_secret(log, (DB_PASSWORD, "forged-secret-0815", "forged-session-token-0815", token))
    assert_no_secret("\n".join(srv.stdout_lines), (DB_PASSWORD,))
    # Nor the SigV4 signatures, which would let a log reader replay requests.
    assert not re.search(r"Signature=[0-9a-f]{64}", log)

    # Nor the audit trail (docs/audit.md), which records every one of those metering calls: no
    # secret, no signature, and the registration token only as its SHA-256 digest.
    status, trail = srv.admin("GET", "/admin/v1/audit?limit=1000")
    assert status == 200
    assert len(trail["events"]) == 6, trail
    audit = json.dumps(trail)
    assert_no_secret(audit, (DB_PASSWORD, "forged-secret-0815", "forged-session-token-0815", token))
    assert "Signature=" not in audit and "AWS4-HMAC-SHA256" not in audit
    assert "sha256:" + hashlib.sha256(token.encode()).hexdigest() in audit
