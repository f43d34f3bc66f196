"""AWS Signature Version 4 on the admin API (issue 8): boto3 signs as it does for AWS, edgesplit verifies,
and every refusal is a 403 in the protocol's own error shape (CloudFront `AccessDenied` in a rest-xml
ErrorResponse, Evidently `AccessDeniedException` with X-Amzn-ErrorType). /healthz and /readyz stay open;
/metrics wants a bearer token only when one is configured.
"""

from __future__ import annotations

import datetime as dt
import html
import http.client
import json
import re
import subprocess
from unittest import mock

import botocore.auth
import pytest
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import _BOTO, _BOTO_CONFIG, ACCESS_KEY_ID, SECRET_ACCESS_KEY, WEB_STAGING
from evidently_support import _CONFIG as EV_CONFIG
from evidently_support import project_arn, raises

CD_PATH = "/2020-05-31/continuous-deployment-policy"
MISMATCH = "The request signature we calculated does not match the signature you provided"
UNKNOWN_KEY = "The security token included in the request is invalid."


# --- clients and requests -------------------------------------------------------------------------


def cloudfront(es, key=ACCESS_KEY_ID, secret=SECRET_ACCESS_KEY, region="us-east-1", signed=True):
    config = _BOTO_CONFIG if signed else _BOTO_CONFIG.merge(Config(signature_version=UNSIGNED))
    return _BOTO.client("cloudfront", endpoint_url=f"http://{es.admin}", region_name=region,
                        aws_access_key_id=key, aws_secret_access_key=secret, config=config)


def evidently(es, key=ACCESS_KEY_ID, secret=SECRET_ACCESS_KEY, region="us-east-1", signed=True):
    config = EV_CONFIG if signed else EV_CONFIG.merge(Config(signature_version=UNSIGNED))
    return _BOTO.client("evidently", endpoint_url=f"http://{es.admin}", region_name=region,
                        aws_access_key_id=key, aws_secret_access_key=secret, config=config)


def weight_config() -> dict:
    return {
        "StagingDistributionDnsNames": {"Quantity": 1, "Items": [WEB_STAGING]},
        "Enabled": True,
        "TrafficConfig": {"Type": "SingleWeight", "SingleWeightConfig": {"Weight": 0.05}},
    }


def cf_denied(call, message: str) -> dict:
    """A CloudFront call that must fail with AccessDenied, 403, a RequestId and `message` in its Message."""
    with pytest.raises(ClientError) as info:
        call()
    r = info.value.response
    assert (r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]) == ("AccessDenied", 403), r
    assert r["ResponseMetadata"].get("RequestId"), r
    assert message in r["Error"]["Message"], r
    return r


def ev_denied(call, message: str) -> dict:
    with raises("AccessDeniedException") as err:
        call()
    assert message in err.response["Error"]["Message"], err.response
    return err.response


def send(es, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    """One plain HTTP request to the admin listener: (status, lower-cased headers, body text)."""
    conn = http.client.HTTPConnection(es.admin, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode(errors="replace")
    finally:
        conn.close()


def signed_headers(es, method: str, path: str, body: bytes, service: str, region: str = "us-east-1",
                   key: str = ACCESS_KEY_ID, secret: str = SECRET_ACCESS_KEY, headers: dict | None = None) -> dict:
    """The headers botocore's SigV4Auth adds to this request (Authorization, X-Amz-Date, ...)."""
    req = AWSRequest(method=method, url=f"http://{es.admin}{path}", data=body, headers=headers or {})
    SigV4Auth(Credentials(key, secret), service, region).add_auth(req)
    return dict(req.headers.items())


def clock_off_by(minutes: int):
    """botocore's signing clock moved by `minutes` (negative: in the past)."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(minutes=minutes)
    return mock.patch.object(botocore.auth, "get_current_datetime", return_value=now)


# --- the happy path ---------------------------------------------------------------------------------


def test_boto3_signed_calls_succeed_on_both_apis(es):
    cf = cloudfront(es)
    created = cf.create_continuous_deployment_policy(ContinuousDeploymentPolicyConfig=weight_config())
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    policy_id = created["ContinuousDeploymentPolicy"]["Id"]
    assert cf.get_continuous_deployment_policy(Id=policy_id)["ETag"] == created["ETag"]
    assert cf.list_continuous_deployment_policies()["ContinuousDeploymentPolicyList"]["Quantity"] == 1

    ev = evidently(es)
    ev.create_project(name="shop")
    ev.create_feature(project="shop", name="f", variations=[{"name": "A", "value": {"stringValue": "a"}}])
    assert ev.evaluate_feature(project="shop", feature="f", entityId="u1")["variation"] == "A"
    # An ARN in the path: boto3 sends arn%3A...%2Fshop and signs it encoded once more (%252F).
    assert ev.get_project(project=project_arn("shop"))["project"]["name"] == "shop"
    assert [f["name"] for f in ev.list_features(project=project_arn("shop"), maxResults=5)["features"]] == ["f"]
    # Evidently takes a signature for any region.
    assert evidently(es, region="eu-west-1").get_project(project="shop")["project"]["name"] == "shop"


def test_the_date_header_can_replace_x_amz_date(es):
    # botocore signs with Date (and sends no X-Amz-Date) when the request already carries one.
    date = dt.datetime.now(dt.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
    hdrs = signed_headers(es, "GET", "/projects", b"", "evidently", headers={"Date": date})
    assert "X-Amz-Date" not in hdrs and "Date" in hdrs, hdrs
    status, _, body = send(es, "GET", "/projects", headers=hdrs)
    assert status == 200, body


# --- refusals ---------------------------------------------------------------------------------------


def test_unsigned_requests_are_403_in_each_protocols_error_shape(es):
    status, headers, body = send(es, "POST", "/projects", json.dumps({"name": "p"}).encode(),
                                 {"Content-Type": "application/json"})
    assert status == 403, body
    assert headers.get("x-amzn-errortype", "").split(":")[0] == "AccessDeniedException", headers
    assert headers.get("x-amzn-requestid"), headers
    assert json.loads(body) == {"__type": "AccessDeniedException", "message": "Missing Authentication Token"}

    status, headers, body = send(es, "GET", CD_PATH)
    assert status == 403, body
    assert headers["content-type"].startswith("text/xml"), headers
    assert "<Code>AccessDenied</Code>" in body and "<Type>Sender</Type>" in body, body
    assert "<Message>Missing Authentication Token</Message>" in body and "<RequestId>" in body, body

    # botocore resolves both into their modelled exceptions.
    cf = cloudfront(es, signed=False)
    with pytest.raises(cf.exceptions.AccessDenied):
        cf.list_continuous_deployment_policies()
    ev_denied(lambda: evidently(es, signed=False).list_projects(), "Missing Authentication Token")
    # Nothing was created on the way.
    assert evidently(es).list_projects()["projects"] == []


def test_a_wrong_secret_is_refused(es):
    cf_denied(lambda: cloudfront(es, secret="not-the-secret").list_continuous_deployment_policies(), MISMATCH)
    ev_denied(lambda: evidently(es, secret="not-the-secret").create_project(name="p"), MISMATCH)
    assert evidently(es).list_projects()["projects"] == []


def test_an_unknown_access_key_is_refused(es):
    cf_denied(lambda: cloudfront(es, key="AKIDSOMEONEELSE").list_continuous_deployment_policies(), UNKNOWN_KEY)
    ev_denied(lambda: evidently(es, key="AKIDSOMEONEELSE").list_projects(), UNKNOWN_KEY)


@pytest.mark.parametrize("minutes", [-20, 20])
def test_a_clock_20_minutes_off_is_refused(es, minutes):
    cf, ev = cloudfront(es), evidently(es)
    expected = "Signature expired" if minutes < 0 else "Signature not yet current"
    with clock_off_by(minutes):
        r = cf_denied(cf.list_continuous_deployment_policies, expected)
        ev_denied(ev.list_projects, expected)
    assert re.search(r"\d{8}T\d{6}Z is (now earlier|still later) than \d{8}T\d{6}Z", r["Error"]["Message"]), r
    # 10 minutes is within AWS's 15.
    with clock_off_by(10 if minutes > 0 else -10):
        assert cf.list_continuous_deployment_policies()["ContinuousDeploymentPolicyList"]["Quantity"] == 0
        assert ev.list_projects()["projects"] == []


def test_cloudfront_must_be_signed_for_us_east_1(es):
    r = cf_denied(lambda: cloudfront(es, region="eu-west-1").list_continuous_deployment_policies(),
                  "Credential should be scoped to a valid region, not 'eu-west-1'")
    assert "us-east-1" in r["Error"]["Message"], r


def test_a_signature_for_the_other_service_is_refused(es):
    hdrs = signed_headers(es, "GET", "/projects", b"", "cloudfront")
    status, _, body = send(es, "GET", "/projects", headers=hdrs)
    assert status == 403 and "Credential should be scoped to correct service: 'evidently'." in body, body
    hdrs = signed_headers(es, "GET", CD_PATH, b"", "evidently")
    status, _, body = send(es, "GET", CD_PATH, headers=hdrs)
    assert status == 403 and "<Code>AccessDenied</Code>" in body, body
    message = html.unescape(re.search(r"<Message>(.*)</Message>", body).group(1))
    assert message == "Credential should be scoped to correct service: 'cloudfront'.", body


def test_a_changed_body_path_or_query_no_longer_verifies(es):
    body = json.dumps({"name": "p"}).encode()
    hdrs = signed_headers(es, "POST", "/projects", body, "evidently", headers={"Content-Type": "application/json"})
    status, _, text = send(es, "POST", "/projects", json.dumps({"name": "q"}).encode(), hdrs)
    assert status == 403 and MISMATCH in text, text
    status, _, text = send(es, "POST", "/segments", body, hdrs)
    assert status == 403 and MISMATCH in text, text
    hdrs = signed_headers(es, "GET", "/projects?maxResults=5", b"", "evidently")
    status, _, text = send(es, "GET", "/projects?maxResults=6", headers=hdrs)
    assert status == 403 and MISMATCH in text, text
    # An x-amz-content-sha256 that is not the body's hash is refused even when it was signed.
    hdrs = signed_headers(es, "POST", "/projects", body, "evidently",
                          headers={"Content-Type": "application/json", "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    status, _, text = send(es, "POST", "/projects", body, hdrs)
    assert status == 403 and "x-amz-content-sha256" in text, text
    # The untouched request goes through.
    hdrs = signed_headers(es, "POST", "/projects", body, "evidently", headers={"Content-Type": "application/json"})
    status, _, text = send(es, "POST", "/projects", body, hdrs)
    assert status == 200, text


def test_refusals_are_counted_on_metrics(es):
    send(es, "GET", "/projects")
    with pytest.raises(ClientError):
        evidently(es, secret="wrong").list_projects()
    text = es.metrics()
    assert 'edgesplit_admin_auth_denied_total{reason="missing"} 1' in text, text
    assert 'edgesplit_admin_auth_denied_total{reason="signature"} 1' in text, text


def test_an_oversized_body_is_refused_before_the_signature_is_checked(es):
    status, headers, body = send(es, "POST", "/projects", b" " * ((1 << 20) + 1), {"Content-Type": "application/json"})
    assert status == 413, body
    assert headers.get("x-amzn-errortype", "").split(":")[0] == "ValidationException", headers


# --- open endpoints and the metrics token -----------------------------------------------------------


def test_health_endpoints_and_metrics_are_open_without_a_token(es):
    for path in ("/healthz", "/readyz", "/metrics"):
        status, _, body = send(es, "GET", path)
        assert status == 200, (path, body)


def test_metrics_token_guards_only_metrics(launcher):
    token = "m3trics-t0ken"
    admin = (f'access_key_id = "{ACCESS_KEY_ID}"\nsecret_access_key = "{SECRET_ACCESS_KEY}"\n'
             f'metrics_token = "{token}"\n')
    es = launcher.start(admin=admin)
    status, headers, _ = send(es, "GET", "/metrics")
    assert status == 401 and headers.get("www-authenticate", "").startswith("Bearer"), headers
    for wrong in (f"Bearer {token}x", f"Bearer {token[:-1]}", f"Basic {token}", token, "Bearer "):
        assert send(es, "GET", "/metrics", headers={"Authorization": wrong})[0] == 401, wrong
    status, _, body = send(es, "GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and "edgesplit_admin_auth_denied_total" in body, body
    assert send(es, "GET", "/metrics", headers={"Authorization": f"bearer {token}"})[0] == 200
    for path in ("/healthz", "/readyz"):
        assert send(es, "GET", path)[0] == 200, path
    # The API still wants SigV4, not the token.
    status, _, _ = send(es, "GET", "/projects", headers={"Authorization": f"Bearer {token}"})
    assert status == 403


def test_secrets_can_come_from_the_environment(launcher):
    admin = ('access_key_id = "AKIDFROMENV"\nsecret_access_key_env = "EDGESPLIT_TEST_ADMIN_SECRET"\n'
             'metrics_token_env = "EDGESPLIT_TEST_METRICS_TOKEN"\n')
    es = launcher.start(admin=admin, env={"EDGESPLIT_TEST_ADMIN_SECRET": "env-secret",
                                          "EDGESPLIT_TEST_METRICS_TOKEN": "env-token"})
    assert evidently(es, key="AKIDFROMENV", secret="env-secret").list_projects()["projects"] == []
    ev_denied(lambda: evidently(es, key="AKIDFROMENV", secret="other").list_projects(), MISMATCH)
    assert send(es, "GET", "/metrics", headers={"Authorization": "Bearer env-token"})[0] == 200


# --- auth = "none" and configs without keys ---------------------------------------------------------


def test_auth_none_accepts_anyone_and_says_so_loudly(launcher):
    es = launcher.start(admin='auth = "none"\n')
    status, _, body = send(es, "POST", "/projects", json.dumps({"name": "open"}).encode(),
                           {"Content-Type": "application/json"})
    assert status == 200, body
    assert send(es, "GET", CD_PATH)[0] == 200
    # Signed requests work too, whatever the key.
    assert evidently(es, key="anyone", secret="anything").get_project(project="open")["project"]["name"] == "open"
    line = es.wait_for("ADMIN API AUTHENTICATION IS OFF")
    assert "level=warn" in line, line


def test_a_config_without_keys_is_refused_with_its_position(launcher, edgesplit_bin):
    path = launcher.config_path
    path.write_text(launcher.config(admin=""))
    text = path.read_text().splitlines()
    line = text.index("[admin]") + 1
    for cmd in ("check", "run"):
        out = subprocess.run([str(edgesplit_bin), cmd, "--config", str(path)], capture_output=True, text=True,
                             timeout=10)
        assert out.returncode == 2, (cmd, out.stdout, out.stderr)
        assert f"{path}:{line}:2: the admin API checks AWS SigV4 signatures but has no key" in out.stderr, out.stderr
        assert 'auth = "none"' in out.stderr, out.stderr
    path.write_text(launcher.config(admin='access_key_id = "A"\nsecret_access_key_env = "EDGESPLIT_TEST_UNSET_VAR"\n'))
    out = subprocess.run([str(edgesplit_bin), "check", "--config", str(path)], capture_output=True, text=True,
                         timeout=10, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 2 and "environment variable `EDGESPLIT_TEST_UNSET_VAR` is not set" in out.stderr, out.stderr
