"""boto3 1.42.50 against edgesplit's CloudFront continuous-deployment-policy API and its data plane.

The contract: ../shared/spec/cloudfront-cd.md sections 5 (wire) and 7 (test matrix), and
../shared/spec/decisions.md D2 (distributions from the file, pins), D3 (weight routing, stickiness cookie)
and D4 (header routing, validation rules).
"""

from __future__ import annotations

import datetime as dt
import http.client
import re
import time

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY_ID, BLOG_STAGING, SECRET_ACCESS_KEY, SHOP_STAGING, WEB_STAGING

CD_PATH = "/2020-05-31/continuous-deployment-policy"
COOKIE = "edgesplit-cd"


# --- helpers ------------------------------------------------------------------------------------------


def dns_names(*names: str, quantity: int | None = None) -> dict:
    return {"Quantity": len(names) if quantity is None else quantity, "Items": list(names)}


def weight_config(weight=0.1, *, names=(WEB_STAGING,), enabled=True, stickiness=None) -> dict:
    swc: dict = {"Weight": weight}
    if stickiness is not None:
        swc["SessionStickinessConfig"] = {"IdleTTL": stickiness[0], "MaximumTTL": stickiness[1]}
    return {
        "StagingDistributionDnsNames": dns_names(*names),
        "Enabled": enabled,
        "TrafficConfig": {"Type": "SingleWeight", "SingleWeightConfig": swc},
    }


def header_config(header="aws-cf-cd-test", value="blue", *, names=(WEB_STAGING,), enabled=True) -> dict:
    return {
        "StagingDistributionDnsNames": dns_names(*names),
        "Enabled": enabled,
        "TrafficConfig": {"Type": "SingleHeader", "SingleHeaderConfig": {"Header": header, "Value": value}},
    }


def create(cf, config: dict) -> tuple[str, str]:
    """Creates a policy; returns (Id, ETag)."""
    resp = cf.create_continuous_deployment_policy(ContinuousDeploymentPolicyConfig=config)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201, resp
    return resp["ContinuousDeploymentPolicy"]["Id"], resp["ETag"]


def update(cf, policy_id: str, etag: str, config: dict) -> str:
    resp = cf.update_continuous_deployment_policy(Id=policy_id, IfMatch=etag, ContinuousDeploymentPolicyConfig=config)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200, resp
    return resp["ETag"]


def expect_error(call, code: str, status: int, **kwargs) -> dict:
    """Runs a boto3 call that must fail with `code` and HTTP `status`, and a RequestId; returns the response."""
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    resp = info.value.response
    got = (resp.get("Error", {}).get("Code"), resp["ResponseMetadata"]["HTTPStatusCode"])
    assert got == (code, status), f"expected {code} {status}, got {got}: {resp}"
    assert resp["ResponseMetadata"].get("RequestId"), f"no RequestId in error response: {resp}"
    return resp


def list_all_quantity(cf) -> int:
    return cf.list_continuous_deployment_policies()["ContinuousDeploymentPolicyList"]["Quantity"]


def raw_admin(es, method: str, path: str, body: bytes | None) -> tuple[int, dict, str]:
    """A SigV4-signed request to the admin listener, sent with http.client (so the body can be anything)."""
    url = f"http://{es.admin}{path}"
    req = AWSRequest(method=method, url=url, data=body or b"", headers={"Content-Length": str(len(body or b""))})
    SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "cloudfront", "us-east-1").add_auth(req)
    prepared = req.prepare()
    conn = http.client.HTTPConnection(es.admin, timeout=10)
    try:
        conn.request(method, path, body=body or b"", headers=dict(prepared.headers.items()))
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode(errors="replace")
    finally:
        conn.close()


class Reply:
    def __init__(self, resp: http.client.HTTPResponse):
        self.status = resp.status
        self.body = resp.read().decode(errors="replace")
        self.headers = resp.headers
        self.set_cookies = resp.headers.get_all("Set-Cookie") or []

    @property
    def side(self) -> str:
        assert self.status == 200, f"proxy answered {self.status}: {self.body!r}"
        assert self.body in ("primary", "staging"), self.body
        return self.body

    @property
    def seen_cookie(self) -> str:
        return self.headers.get("x-seen-cookie", "")

    def cd_cookie(self) -> str | None:
        """The full Set-Cookie line for edgesplit-cd, or None."""
        found = [c for c in self.set_cookies if c.split("=", 1)[0].strip() == COOKIE]
        assert len(found) <= 1, f"more than one {COOKIE} Set-Cookie: {found}"
        return found[0] if found else None

    def cd_value(self) -> str:
        line = self.cd_cookie()
        assert line is not None, f"no {COOKIE} Set-Cookie; Set-Cookie headers: {self.set_cookies}"
        return line.split(";", 1)[0].split("=", 1)[1].strip()


class Proxy:
    """Requests through edgesplit's `http` listener with a chosen Host, over one keep-alive connection."""

    def __init__(self, addr: str, host: str = "web.test"):
        self.addr = addr
        self.host = host
        self.conn: http.client.HTTPConnection | None = None

    def get(self, headers: list[tuple[str, str]] | dict | None = None, path: str = "/") -> Reply:
        items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.addr, timeout=5)
            try:
                self.conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
                self.conn.putheader("Host", self.host)
                for k, v in items:
                    self.conn.putheader(k, v)
                self.conn.endheaders()
                reply = Reply(self.conn.getresponse())
                if reply.headers.get("Connection", "").lower() == "close":
                    self.close()
                return reply
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@pytest.fixture
def proxy(es):
    p = Proxy(es.proxy)
    yield p
    p.close()


def parse_cd_cookie(line: str) -> tuple[list[str], dict[str, str | bool]]:
    """Splits a Set-Cookie line into the value's dot-separated fields and the attributes (lower-cased names)."""
    parts = [p.strip() for p in line.split(";")]
    name, value = parts[0].split("=", 1)
    assert name == COOKIE, line
    attrs: dict[str, str | bool] = {}
    for p in parts[1:]:
        if "=" in p:
            k, v = p.split("=", 1)
            attrs[k.strip().lower()] = v.strip()
        elif p:
            attrs[p.lower()] = True
    return value.split("."), attrs


def tamper_mac(value: str) -> str:
    """Changes the first character of the mac (the last dot-separated field).

    The first, not the last: the last base64url character of a 128-bit mac carries padding bits, which a
    lenient decoder could ignore.
    """
    fields = value.split(".")
    mac = fields[-1]
    first = "A" if mac[0] != "A" else "B"
    fields[-1] = first + mac[1:]
    return ".".join(fields)


# --- 1. create ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(weight_config(0.1, stickiness=(300, 600)), id="single-weight-sticky"),
        pytest.param(weight_config(0.05), id="single-weight"),
        pytest.param(header_config("aws-cf-cd-test", "blue"), id="single-header"),
    ],
)
def test_create_returns_201_location_etag_and_echoes_the_config(cf, config):
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    resp = cf.create_continuous_deployment_policy(ContinuousDeploymentPolicyConfig=config)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
    policy = resp["ContinuousDeploymentPolicy"]
    pid = policy["Id"]
    assert pid and "/" not in pid
    assert resp["Location"].endswith(f"/2020-05-31/continuous-deployment-policy/{pid}"), resp["Location"]
    assert resp["ETag"]
    assert resp["ResponseMetadata"]["RequestId"]
    modified = policy["LastModifiedTime"]
    assert isinstance(modified, dt.datetime) and modified.tzinfo is not None and modified.utcoffset() is not None
    assert before <= modified <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
    echoed = policy["ContinuousDeploymentPolicyConfig"]
    assert echoed == config
    assert isinstance(echoed["Enabled"], bool)
    if config["TrafficConfig"]["Type"] == "SingleWeight":
        assert isinstance(echoed["TrafficConfig"]["SingleWeightConfig"]["Weight"], float)

    # Get and GetConfig return the same thing and the ETag of the create.
    got = cf.get_continuous_deployment_policy(Id=pid)
    assert got["ETag"] == resp["ETag"]
    assert got["ContinuousDeploymentPolicy"]["Id"] == pid
    assert got["ContinuousDeploymentPolicy"]["ContinuousDeploymentPolicyConfig"] == config
    assert got["ContinuousDeploymentPolicy"]["LastModifiedTime"] == modified
    got_config = cf.get_continuous_deployment_policy_config(Id=pid)
    assert got_config["ETag"] == resp["ETag"]
    assert got_config["ContinuousDeploymentPolicyConfig"] == config


def test_each_create_gets_its_own_id(cf):
    a, _ = create(cf, weight_config(0.1, names=(WEB_STAGING,)))
    b, _ = create(cf, header_config(names=(SHOP_STAGING,)))
    assert a != b


def test_elements_in_any_order_and_boundaries_are_accepted(cf):
    # boto3 serialises in the caller's dict order (spec 5.1): Type after the sub-config here, TTLs reversed.
    config = {
        "Enabled": True,
        "TrafficConfig": {
            "SingleWeightConfig": {"SessionStickinessConfig": {"MaximumTTL": 3600, "IdleTTL": 300}, "Weight": 0.15},
            "Type": "SingleWeight",
        },
        "StagingDistributionDnsNames": {"Items": [WEB_STAGING], "Quantity": 1},
    }
    pid, etag = create(cf, config)
    got = cf.get_continuous_deployment_policy_config(Id=pid)["ContinuousDeploymentPolicyConfig"]
    assert got["TrafficConfig"]["SingleWeightConfig"] == {
        "Weight": 0.15,
        "SessionStickinessConfig": {"IdleTTL": 300, "MaximumTTL": 3600},
    }
    # Weight 0 and IdleTTL == MaximumTTL are in range too (D4: 0..=0.15, 300 <= Idle <= Max <= 3600).
    etag = update(cf, pid, etag, weight_config(0.0, stickiness=(3600, 3600)))
    assert cf.get_continuous_deployment_policy(Id=pid)["ETag"] == etag


# --- 2. ETags, update, delete -------------------------------------------------------------------------


def test_update_replaces_the_config_whole_and_rotates_the_etag(cf):
    pid, etag1 = create(cf, weight_config(0.1, stickiness=(300, 600)))
    modified1 = cf.get_continuous_deployment_policy(Id=pid)["ContinuousDeploymentPolicy"]["LastModifiedTime"]

    new_config = header_config("aws-cf-cd-canary", "yes")
    resp = cf.update_continuous_deployment_policy(Id=pid, IfMatch=etag1, ContinuousDeploymentPolicyConfig=new_config)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    etag2 = resp["ETag"]
    assert etag2 and etag2 != etag1
    assert resp["ContinuousDeploymentPolicy"]["Id"] == pid
    assert resp["ContinuousDeploymentPolicy"]["ContinuousDeploymentPolicyConfig"] == new_config
    assert resp["ContinuousDeploymentPolicy"]["LastModifiedTime"] >= modified1

    # Whole replacement: nothing of the weight config survives.
    got = cf.get_continuous_deployment_policy_config(Id=pid)
    assert got["ETag"] == etag2
    assert got["ContinuousDeploymentPolicyConfig"] == new_config
    assert cf.get_continuous_deployment_policy(Id=pid)["ETag"] == etag2

    # And back, without stickiness this time: no SessionStickinessConfig appears.
    etag3 = update(cf, pid, etag2, weight_config(0.02))
    assert etag3 not in (etag1, etag2)
    assert cf.get_continuous_deployment_policy_config(Id=pid)["ContinuousDeploymentPolicyConfig"] == weight_config(0.02)

    # The old ETags are stale now.
    for stale in (etag1, etag2):
        expect_error(
            cf.update_continuous_deployment_policy,
            "PreconditionFailed",
            412,
            Id=pid,
            IfMatch=stale,
            ContinuousDeploymentPolicyConfig=weight_config(0.03),
        )
    got = cf.get_continuous_deployment_policy(Id=pid)
    assert got["ETag"] == etag3
    assert got["ContinuousDeploymentPolicy"]["ContinuousDeploymentPolicyConfig"] == weight_config(0.02)


def test_update_without_if_match_is_invalid_if_match_version(cf):
    pid, etag = create(cf, weight_config(0.1))
    expect_error(
        cf.update_continuous_deployment_policy,
        "InvalidIfMatchVersion",
        400,
        Id=pid,
        ContinuousDeploymentPolicyConfig=weight_config(0.05),
    )
    got = cf.get_continuous_deployment_policy(Id=pid)
    assert got["ETag"] == etag
    assert got["ContinuousDeploymentPolicy"]["ContinuousDeploymentPolicyConfig"] == weight_config(0.1)


def test_delete_with_if_match_is_204_and_the_policy_is_gone(cf):
    pid, etag = create(cf, weight_config(0.1))
    resp = cf.delete_continuous_deployment_policy(Id=pid, IfMatch=etag)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error(cf.get_continuous_deployment_policy, "NoSuchContinuousDeploymentPolicy", 404, Id=pid)
    expect_error(cf.get_continuous_deployment_policy_config, "NoSuchContinuousDeploymentPolicy", 404, Id=pid)
    expect_error(cf.delete_continuous_deployment_policy, "NoSuchContinuousDeploymentPolicy", 404, Id=pid, IfMatch=etag)
    assert list_all_quantity(cf) == 0
    # The staging name is free again.
    create(cf, header_config())


def test_delete_with_a_stale_etag_is_precondition_failed(cf):
    pid, etag1 = create(cf, weight_config(0.1))
    etag2 = update(cf, pid, etag1, weight_config(0.05))
    expect_error(cf.delete_continuous_deployment_policy, "PreconditionFailed", 412, Id=pid, IfMatch=etag1)
    assert cf.get_continuous_deployment_policy(Id=pid)["ETag"] == etag2
    cf.delete_continuous_deployment_policy(Id=pid, IfMatch=etag2)


def test_delete_without_if_match_is_invalid_if_match_version(cf):
    pid, etag = create(cf, weight_config(0.1))
    expect_error(cf.delete_continuous_deployment_policy, "InvalidIfMatchVersion", 400, Id=pid)
    assert cf.get_continuous_deployment_policy(Id=pid)["ETag"] == etag


def test_unknown_id_is_no_such_continuous_deployment_policy(cf):
    create(cf, weight_config(0.1))  # something exists, just not this
    unknown = "00000000-0000-4000-8000-000000000000"
    expect_error(cf.get_continuous_deployment_policy, "NoSuchContinuousDeploymentPolicy", 404, Id=unknown)
    expect_error(cf.get_continuous_deployment_policy_config, "NoSuchContinuousDeploymentPolicy", 404, Id=unknown)
    expect_error(
        cf.update_continuous_deployment_policy,
        "NoSuchContinuousDeploymentPolicy",
        404,
        Id=unknown,
        IfMatch="E2QWRUHAPOMQZL",
        ContinuousDeploymentPolicyConfig=header_config(names=(SHOP_STAGING,)),
    )
    expect_error(
        cf.delete_continuous_deployment_policy, "NoSuchContinuousDeploymentPolicy", 404, Id=unknown, IfMatch="E2QWRUHAPOMQZL"
    )


# --- 3. validation ------------------------------------------------------------------------------------


def _without(config: dict, key: str) -> dict:
    tc = dict(config["TrafficConfig"])
    del tc[key]
    return {**config, "TrafficConfig": tc}


INVALID = [
    pytest.param(weight_config(0.16), "InvalidArgument", id="weight-0.16"),
    pytest.param(weight_config(-0.01), "InvalidArgument", id="weight-negative"),
    pytest.param(weight_config(0.1, stickiness=(299, 600)), "InvalidArgument", id="idle-ttl-299"),
    pytest.param(weight_config(0.1, stickiness=(300, 3601)), "InvalidArgument", id="maximum-ttl-3601"),
    pytest.param(weight_config(0.1, stickiness=(700, 600)), "InvalidArgument", id="idle-above-maximum"),
    pytest.param(header_config("x-test", "blue"), "InvalidArgument", id="header-without-prefix"),
    pytest.param(header_config("aws-cf-cd-test", ""), "InvalidArgument", id="empty-header-value"),
    pytest.param(_without(weight_config(0.1), "SingleWeightConfig"), "InvalidArgument", id="weight-type-no-weight-config"),
    pytest.param(_without(header_config(), "SingleHeaderConfig"), "InvalidArgument", id="header-type-no-header-config"),
    pytest.param(weight_config(0.1, names=("dnope.cloudfront.net",)), "InvalidArgument", id="unknown-staging-dns-name"),
    pytest.param(
        {**weight_config(0.1), "StagingDistributionDnsNames": dns_names(WEB_STAGING, quantity=2)},
        "InconsistentQuantities",
        id="quantity-2-one-item",
    ),
]


@pytest.mark.parametrize("config,code", INVALID)
def test_create_rejects_invalid_config(cf, config, code):
    expect_error(cf.create_continuous_deployment_policy, code, 400, ContinuousDeploymentPolicyConfig=config)
    # Nothing was stored, and the staging name was not taken.
    assert list_all_quantity(cf) == 0
    create(cf, weight_config(0.1))


@pytest.mark.parametrize(
    "config,code",
    [p for p in INVALID if p.id in ("weight-0.16", "header-without-prefix", "quantity-2-one-item", "unknown-staging-dns-name")],
)
def test_update_rejects_invalid_config_and_keeps_the_policy(cf, config, code):
    pid, etag = create(cf, header_config())
    expect_error(
        cf.update_continuous_deployment_policy, code, 400, Id=pid, IfMatch=etag, ContinuousDeploymentPolicyConfig=config
    )
    got = cf.get_continuous_deployment_policy(Id=pid)
    assert got["ETag"] == etag
    assert got["ContinuousDeploymentPolicy"]["ContinuousDeploymentPolicyConfig"] == header_config()


# --- 4. StagingDistributionInUse ----------------------------------------------------------------------


def test_second_policy_on_the_same_staging_name_is_staging_distribution_in_use(cf):
    create(cf, weight_config(0.1, names=(WEB_STAGING,)))
    expect_error(
        cf.create_continuous_deployment_policy,
        "StagingDistributionInUse",
        409,
        ContinuousDeploymentPolicyConfig=header_config(names=(WEB_STAGING,)),
    )
    assert list_all_quantity(cf) == 1


def test_update_onto_a_staging_name_in_use_is_staging_distribution_in_use(cf):
    create(cf, weight_config(0.1, names=(WEB_STAGING,)))
    pid, etag = create(cf, header_config(names=(SHOP_STAGING,)))
    expect_error(
        cf.update_continuous_deployment_policy,
        "StagingDistributionInUse",
        409,
        Id=pid,
        IfMatch=etag,
        ContinuousDeploymentPolicyConfig=header_config(names=(WEB_STAGING,)),
    )
    got = cf.get_continuous_deployment_policy(Id=pid)
    assert got["ETag"] == etag
    assert got["ContinuousDeploymentPolicy"]["ContinuousDeploymentPolicyConfig"] == header_config(names=(SHOP_STAGING,))
    # Moving to a free name is fine, and frees the old one.
    etag = update(cf, pid, etag, header_config(names=(BLOG_STAGING,)))
    create(cf, header_config(names=(SHOP_STAGING,)))


# --- 5. ContinuousDeploymentPolicyInUse ---------------------------------------------------------------


def test_deleting_a_pinned_policy_is_continuous_deployment_policy_in_use(launcher):
    es = launcher.start()
    cf = es.cloudfront()
    pid, etag = create(cf, header_config(names=(SHOP_STAGING,)))

    es.reload(launcher.config(pins={"shop": pid}))
    expect_error(cf.delete_continuous_deployment_policy, "ContinuousDeploymentPolicyInUse", 409, Id=pid, IfMatch=etag)
    assert cf.get_continuous_deployment_policy(Id=pid)["ETag"] == etag

    # Unpinned again, the delete goes through.
    es.reload(launcher.config())
    resp = cf.delete_continuous_deployment_policy(Id=pid, IfMatch=etag)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204


# --- 6. TooManyContinuousDeploymentPolicies -----------------------------------------------------------


def test_past_max_policies_is_too_many_continuous_deployment_policies(launcher):
    es = launcher.start(max_policies=2)
    cf = es.cloudfront()
    create(cf, weight_config(0.1, names=(WEB_STAGING,)))
    pid, etag = create(cf, header_config(names=(SHOP_STAGING,)))
    expect_error(
        cf.create_continuous_deployment_policy,
        "TooManyContinuousDeploymentPolicies",
        400,
        ContinuousDeploymentPolicyConfig=header_config(names=(BLOG_STAGING,)),
    )
    assert list_all_quantity(cf) == 2
    cf.delete_continuous_deployment_policy(Id=pid, IfMatch=etag)
    create(cf, header_config(names=(BLOG_STAGING,)))


# --- 7. list ------------------------------------------------------------------------------------------


def test_list_empty(cf):
    page = cf.list_continuous_deployment_policies()["ContinuousDeploymentPolicyList"]
    assert page["Quantity"] == 0
    assert page.get("Items", []) == []
    assert "NextMarker" not in page
    assert isinstance(page["MaxItems"], int)


def test_list_pages_with_max_items_1_through_next_marker(cf):
    created = {}
    for config in (
        weight_config(0.1, names=(WEB_STAGING,)),
        header_config(names=(SHOP_STAGING,)),
        weight_config(0.05, names=(BLOG_STAGING,), stickiness=(300, 600)),
    ):
        pid, _ = create(cf, config)
        created[pid] = config

    seen = []
    marker = None
    for _ in range(10):  # bounded walk
        kwargs = {"MaxItems": "1"}
        if marker is not None:
            kwargs["Marker"] = marker
        page = cf.list_continuous_deployment_policies(**kwargs)["ContinuousDeploymentPolicyList"]
        assert page["MaxItems"] == 1, page
        assert page["Quantity"] == 3, page  # the total, regardless of MaxItems (spec 5.6)
        items = page.get("Items", [])
        assert len(items) == 1, page
        policy = items[0]["ContinuousDeploymentPolicy"]
        assert isinstance(policy["LastModifiedTime"], dt.datetime)
        assert policy["ContinuousDeploymentPolicyConfig"] == created[policy["Id"]]
        seen.append(policy["Id"])
        marker = page.get("NextMarker")
        if not marker:
            break
    else:
        pytest.fail(f"NextMarker never ran out; seen {seen}")
    assert sorted(seen) == sorted(created), seen

    everything = cf.list_continuous_deployment_policies()["ContinuousDeploymentPolicyList"]
    assert everything["Quantity"] == 3
    assert sorted(i["ContinuousDeploymentPolicy"]["Id"] for i in everything["Items"]) == sorted(created)
    assert "NextMarker" not in everything


# --- 8. malformed bodies ------------------------------------------------------------------------------


ERROR_CODE = re.compile(r"<Code>([^<]*)</Code>")


def test_malformed_xml_is_400_with_an_error_response(es):
    status, headers, body = raw_admin(es, "POST", CD_PATH, b"<ContinuousDeploymentPolicyConfig><Enabled>tru")
    assert status == 400, (status, body)
    assert "<ErrorResponse" in body and "<RequestId>" in body, body
    code = ERROR_CODE.search(body)
    assert code, body
    assert code.group(1) == "InvalidArgument" or "Malformed" in code.group(1), body
    assert list_all_quantity(es.cloudfront()) == 0


def test_wrong_value_types_are_400_not_500(es):
    body = (
        b'<ContinuousDeploymentPolicyConfig xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/">'
        b"<StagingDistributionDnsNames><Quantity>1</Quantity><Items><DnsName>"
        + WEB_STAGING.encode()
        + b"</DnsName></Items></StagingDistributionDnsNames><Enabled>true</Enabled>"
        b"<TrafficConfig><Type>SingleWeight</Type><SingleWeightConfig><Weight>lots</Weight></SingleWeightConfig>"
        b"</TrafficConfig></ContinuousDeploymentPolicyConfig>"
    )
    status, _, text = raw_admin(es, "POST", CD_PATH, body)
    assert status == 400, (status, text)
    assert "<ErrorResponse" in text and "<RequestId>" in text, text


def test_empty_body_is_missing_body(es):
    status, _, body = raw_admin(es, "POST", CD_PATH, b"")
    assert status == 400, (status, body)
    assert "<ErrorResponse" in body and "<RequestId>" in body, body
    code = ERROR_CODE.search(body)
    assert code and code.group(1) == "MissingBody", body


# --- 9. durability ------------------------------------------------------------------------------------


def test_policies_survive_a_restart_on_the_same_store(launcher):
    first = launcher.start()
    cf = first.cloudfront()
    pid, etag = create(cf, weight_config(0.1, stickiness=(300, 600)))
    other, other_etag = create(cf, header_config(names=(SHOP_STAGING,)))
    other_etag = update(cf, other, other_etag, header_config("aws-cf-cd-x", "1", names=(SHOP_STAGING,)))
    modified = cf.get_continuous_deployment_policy(Id=pid)["ContinuousDeploymentPolicy"]["LastModifiedTime"]
    # A sticky session from before the restart (D3: the generated cookie key is kept in the store).
    p = Proxy(first.proxy)
    try:
        before = p.get()
        session = before.cd_value()
    finally:
        p.close()
    assert first.stop() == 0, first.log()

    second = launcher.start()
    cf = second.cloudfront()
    got = cf.get_continuous_deployment_policy(Id=pid)
    assert got["ETag"] == etag
    assert got["ContinuousDeploymentPolicy"]["LastModifiedTime"] == modified
    assert got["ContinuousDeploymentPolicy"]["ContinuousDeploymentPolicyConfig"] == weight_config(0.1, stickiness=(300, 600))
    got = cf.get_continuous_deployment_policy_config(Id=other)
    assert got["ETag"] == other_etag
    assert got["ContinuousDeploymentPolicyConfig"] == header_config("aws-cf-cd-x", "1", names=(SHOP_STAGING,))
    assert list_all_quantity(cf) == 2
    # The restored policies are live on the data plane too, and the old session is still honoured.
    p = Proxy(second.proxy, host="shop.test")
    try:
        assert p.get({"aws-cf-cd-x": "1"}).side == "staging"
        p.host = "web.test"
        for _ in range(5):
            assert p.get({"Cookie": f"{COOKIE}={session}"}).side == before.side
    finally:
        p.close()
    assert second.routing_decisions("web", "sticky") == 5
    assert second.routing_decisions("web", "weight-draw") == 0


# --- 10. data plane -----------------------------------------------------------------------------------


def test_without_a_policy_everything_goes_to_primary(es, proxy):
    for headers in ({}, {"aws-cf-cd-test": "blue"}, {"Cookie": f"{COOKIE}=v1.s.1.1.1.AAAA"}):
        for _ in range(10):
            reply = proxy.get(headers)
            assert reply.side == "primary"
            assert reply.cd_cookie() is None
    assert es.routing_decisions("web", "no-policy") >= 30


def test_single_header_routes_matching_requests_to_staging(es, cf, proxy):
    create(cf, header_config("aws-cf-cd-test", "blue"))
    assert proxy.get({"aws-cf-cd-test": "blue"}).side == "staging"
    assert proxy.get({"AWS-CF-CD-TEST": "blue"}).side == "staging"  # name is case-insensitive (D4)
    assert proxy.get({"aws-cf-cd-test": "green"}).side == "primary"
    assert proxy.get({"aws-cf-cd-test": "Blue"}).side == "primary"  # value is byte-for-byte (D4)
    assert proxy.get().side == "primary"
    # Any instance of the header matching is enough (D4).
    assert proxy.get([("aws-cf-cd-test", "green"), ("aws-cf-cd-test", "blue")]).side == "staging"
    # Cookies are ignored in header mode (D4).
    assert proxy.get({"Cookie": f"{COOKIE}=v1.s.1.1.1.AAAA"}).side == "primary"
    # Only the distribution whose staging name the policy lists is affected.
    shop = Proxy(es.proxy, host="shop.test")
    try:
        assert shop.get({"aws-cf-cd-test": "blue"}).side == "primary"
    finally:
        shop.close()

    metrics = es.metrics()
    m = re.search(r'^edgesplit_routing_decisions_total\{distribution="web",reason="header-match"\} (\d+)', metrics, re.M)
    assert m and int(m.group(1)) >= 3, metrics
    assert es.routing_decisions("web", "header-miss") >= 4


def test_a_change_takes_effect_for_the_next_request(es, cf, proxy):
    assert proxy.get({"aws-cf-cd-test": "blue"}).side == "primary"
    pid, etag = create(cf, header_config("aws-cf-cd-test", "blue"))
    assert proxy.get({"aws-cf-cd-test": "blue"}).side == "staging"
    etag = update(cf, pid, etag, header_config("aws-cf-cd-test", "green"))
    assert proxy.get({"aws-cf-cd-test": "blue"}).side == "primary"
    assert proxy.get({"aws-cf-cd-test": "green"}).side == "staging"
    etag = update(cf, pid, etag, header_config("aws-cf-cd-test", "green", enabled=False))
    assert proxy.get({"aws-cf-cd-test": "green"}).side == "primary"
    etag = update(cf, pid, etag, header_config("aws-cf-cd-test", "green"))
    assert proxy.get({"aws-cf-cd-test": "green"}).side == "staging"
    cf.delete_continuous_deployment_policy(Id=pid, IfMatch=etag)
    assert proxy.get({"aws-cf-cd-test": "green"}).side == "primary"


def test_single_weight_without_stickiness_draws_per_request_and_sets_no_cookie(es, cf, proxy):
    create(cf, weight_config(0.15))
    sides = [proxy.get() for _ in range(400)]
    share = sum(r.side == "staging" for r in sides) / len(sides)
    # n = 400, p = 0.15: mean 60, sd 7.1; +-6 sd is [17, 103] -> a false failure is < 1e-8 per run.
    assert 0.0425 <= share <= 0.2575, share
    assert all(r.cd_cookie() is None for r in sides), [r.set_cookies for r in sides if r.cd_cookie()][:3]
    assert es.routing_decisions("web", "weight-draw") >= 400


def test_single_weight_with_stickiness(es, cf, proxy):
    pid, etag = create(cf, weight_config(0.15, stickiness=(300, 600)))
    draws_before = es.routing_decisions("web", "weight-draw")

    # 400 fresh viewers: the share is near the weight, and each gets a well-formed cookie for its side.
    replies = [proxy.get() for _ in range(400)]
    staging = [r for r in replies if r.side == "staging"]
    share = len(staging) / len(replies)
    # n = 400, p = 0.15: mean 60, sd 7.1; +-6 sd is [17, 103] -> a false failure is < 1e-8 per run.
    assert 0.0425 <= share <= 0.2575, share
    for r in replies:
        line = r.cd_cookie()
        assert line is not None, f"no {COOKIE} Set-Cookie on a sticky response: {r.set_cookies}"
        fields, attrs = parse_cd_cookie(line)
        assert len(fields) == 6 and fields[0] == "v1", line
        assert fields[1] == r.side[0], f"cookie side {fields[1]} but served by {r.side}: {line}"
        assert attrs.get("httponly") is True, line
        assert attrs.get("path") == "/", line
        assert str(attrs.get("samesite", "")).lower() == "lax", line
        max_age = attrs.get("max-age")
        assert isinstance(max_age, str) and max_age.isdigit() and 0 < int(max_age) <= 300, line
        assert r.seen_cookie == ""
    assert es.routing_decisions("web", "weight-draw") - draws_before >= 400

    # Replaying a cookie keeps the side, and the origin never sees it. The cookie is re-issued only once
    # its `last seen` is 10 s old (D3's refresh granularity, the default `cookie_refresh`).
    primary_cookie = next(r.cd_value() for r in replies if r.side == "primary")
    staging_cookie = staging[0].cd_value()
    sticky_before = es.routing_decisions("web", "sticky")
    for cookie, side in ((primary_cookie, "primary"), (staging_cookie, "staging")):
        last = int(cookie.split(".")[3])
        for _ in range(20):
            before = time.time()
            r = proxy.get({"Cookie": f"{COOKIE}={cookie}"})
            after = time.time()
            assert r.side == side, f"cookie {cookie} served by {r.side}"
            assert COOKIE not in r.seen_cookie, r.seen_cookie
            reissued = r.cd_cookie()
            if int(after) - last < 10:
                assert reissued is None, f"a cookie {int(after) - last} s old was re-issued: {reissued}"
            elif int(before) - last >= 10:
                assert reissued is not None, "past the refresh granularity the cookie is re-issued (D3)"
            if reissued is not None:
                assert parse_cd_cookie(reissued)[0][1] == side[0], reissued
    assert es.routing_decisions("web", "sticky") - sticky_before >= 40

    # Other cookies in the same header still reach the origin, without ours.
    r = proxy.get({"Cookie": f"a=1; {COOKIE}={staging_cookie}; b=2"})
    assert r.side == "staging"
    assert r.seen_cookie == "a=1; b=2", r.seen_cookie

    # A tampered mac is a new draw: never an error, and a fresh cookie.
    for bad in (tamper_mac(staging_cookie), tamper_mac(primary_cookie)):
        draws = es.routing_decisions("web", "weight-draw")
        r = proxy.get({"Cookie": f"{COOKIE}={bad}"})
        assert r.status == 200 and r.side in ("primary", "staging")
        assert COOKIE not in r.seen_cookie, r.seen_cookie
        fresh = r.cd_value()
        assert fresh != bad
        assert parse_cd_cookie(r.cd_cookie())[0][1] == r.side[0]
        assert es.routing_decisions("web", "weight-draw") == draws + 1, "a tampered cookie must be a new draw"
    # So is a cookie whose side was flipped without re-signing, and garbage.
    fields = primary_cookie.split(".")
    flipped = ".".join([fields[0], "s", *fields[2:]])
    for bad in (flipped, "garbage", "v1.s.1.1.1.AAAAAAAAAAAAAAAAAAAAAA"):
        draws = es.routing_decisions("web", "weight-draw")
        r = proxy.get({"Cookie": f"{COOKIE}={bad}"})
        assert r.status == 200, (bad, r.status, r.body)
        assert r.cd_cookie() is not None
        assert es.routing_decisions("web", "weight-draw") == draws + 1, f"{bad!r} must be a new draw"

    # Disabled: everything to primary, whatever the cookie.
    old_epoch = staging_cookie.split(".")[4]
    etag = update(cf, pid, etag, weight_config(0.15, stickiness=(300, 600), enabled=False))
    for _ in range(10):
        assert proxy.get({"Cookie": f"{COOKIE}={staging_cookie}"}).side == "primary"
        assert proxy.get().side == "primary"
    assert es.routing_decisions("web", "disabled") >= 20

    # Enabled again: the old cookie's epoch is stale, so it is a new draw with a new epoch.
    etag = update(cf, pid, etag, weight_config(0.15, stickiness=(300, 600)))
    draws = es.routing_decisions("web", "weight-draw")
    r = proxy.get({"Cookie": f"{COOKIE}={staging_cookie}"})
    assert r.status == 200
    new_fields, _ = parse_cd_cookie(r.cd_cookie() or pytest.fail(f"no fresh cookie: {r.set_cookies}"))
    assert new_fields[4] != old_epoch, (old_epoch, new_fields)
    assert es.routing_decisions("web", "weight-draw") == draws + 1
    # The new cookie is honoured.
    side = r.side
    for _ in range(5):
        assert proxy.get({"Cookie": f"{COOKIE}={r.cd_value()}"}).side == side

    metrics = es.metrics()
    for reason in ("weight-draw", "sticky"):
        m = re.search(r'^edgesplit_routing_decisions_total\{distribution="web",reason="%s"\} (\d+)' % reason, metrics, re.M)
        assert m and int(m.group(1)) > 0, (reason, metrics)


def test_switching_stickiness_off_invalidates_cookies(es, cf, proxy):
    pid, etag = create(cf, weight_config(0.15, stickiness=(300, 600)))
    cookie = proxy.get().cd_value()
    old_epoch = cookie.split(".")[4]
    etag = update(cf, pid, etag, weight_config(0.15))
    r = proxy.get({"Cookie": f"{COOKIE}={cookie}"})
    assert r.cd_cookie() is None  # no stickiness, no cookie
    assert COOKIE not in r.seen_cookie, r.seen_cookie
    etag = update(cf, pid, etag, weight_config(0.15, stickiness=(300, 600)))
    r = proxy.get({"Cookie": f"{COOKIE}={cookie}"})
    assert parse_cd_cookie(r.cd_value() and r.cd_cookie())[0][4] != old_epoch
