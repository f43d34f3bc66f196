"""Helpers for the boto3 conformance suite of edgesplit's CloudWatch Evidently API (test_evidently.py).

The edgesplit processes come from conftest.py (`launcher` / `es`: a fresh `edgesplit run` with its own
temporary store per test, every wait bounded). This module only adds what Evidently needs on top:
a boto3 `evidently` client with host-prefix injection off (spec 1.1, D7), ARN builders for the default
account/region, an error-checking context manager, a raw HTTP helper and the D5 bucketing function.
"""

from __future__ import annotations

import contextlib
import http.client
import json
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import _BOTO, ACCESS_KEY_ID, SECRET_ACCESS_KEY, EdgeSplit  # noqa: F401 - the session caches models

ACCOUNT = "000000000000"
REGION = "us-east-1"

# inject_host_prefix=False: EvaluateFeature/BatchEvaluateFeature/PutProjectEvents would otherwise go to
# dataplane.127.0.0.1 (spec 1.1). One attempt only: a 5xx must show up, and a create must not be re-sent.
_CONFIG = Config(
    inject_host_prefix=False,
    retries={"total_max_attempts": 1, "mode": "standard"},
    connect_timeout=5,
    read_timeout=15,
)

VALIDATION_REASONS = {"unknownOperation", "cannotParse", "fieldValidationFailed", "other"}


def evidently_client(es: EdgeSplit, sent: list | None = None):
    """A boto3 Evidently client on `es`'s admin listener. With `sent`, every outgoing request's
    (method, url) is appended to it (a before-send hook that lets the request go through)."""
    client = _BOTO.client(
        "evidently",
        endpoint_url=f"http://{es.admin}",
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=_CONFIG,
    )
    if sent is not None:

        def record(request, **_):
            sent.append((request.method, request.url))
            return None

        client.meta.events.register("before-send.evidently", record)
    return client


# --- ARNs ------------------------------------------------------------------------------------------


def project_arn(p: str) -> str:
    return f"arn:aws:evidently:{REGION}:{ACCOUNT}:project/{p}"


def feature_arn(p: str, f: str) -> str:
    return f"{project_arn(p)}/feature/{f}"


def launch_arn(p: str, name: str) -> str:
    return f"{project_arn(p)}/launch/{name}"


def experiment_arn(p: str, name: str) -> str:
    return f"{project_arn(p)}/experiment/{name}"


def segment_arn(s: str) -> str:
    return f"arn:aws:evidently:{REGION}:{ACCOUNT}:segment/{s}"


# --- errors ----------------------------------------------------------------------------------------


_STATUS = {
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ConflictException": 409,
    "ServiceQuotaExceededException": 402,
    "ThrottlingException": 429,
}


@dataclass
class Raised:
    error: ClientError | None = None

    @property
    def response(self) -> dict:
        assert self.error is not None
        return self.error.response


@contextlib.contextmanager
def raises(code: str):
    """Expects a botocore ClientError with error code `code`, the modelled HTTP status (spec 1.3), a
    RequestId and a message. For ValidationException also a modelled `reason`, and a well-formed
    `fieldList` when present. Yields a `Raised` whose `.response` is the parsed error response."""
    out = Raised()
    try:
        yield out
    except ClientError as e:
        out.error = e
        r = e.response
        got = r.get("Error", {}).get("Code")
        status = r.get("ResponseMetadata", {}).get("HTTPStatusCode")
        assert got == code, f"expected {code}, got {got} (HTTP {status}): {r}"
        assert status == _STATUS[code], f"{code} must be HTTP {_STATUS[code]}, was {status}: {r}"
        assert r["ResponseMetadata"].get("RequestId"), f"error without a RequestId: {r}"
        assert r["Error"].get("Message"), f"error without a message: {r}"
        if code == "ValidationException":
            assert r.get("reason") in VALIDATION_REASONS, f"ValidationException reason {r.get('reason')!r}: {r}"
            fields = r.get("fieldList")
            if fields is not None:
                assert isinstance(fields, list) and all(
                    isinstance(f, dict) and f.get("name") and "message" in f for f in fields
                ), f"bad fieldList {fields!r}"
        return
    raise AssertionError(f"expected {code}, but the call succeeded")


def field_names(r: dict) -> list[str]:
    return [f["name"] for f in r.get("fieldList") or []]


# --- raw HTTP --------------------------------------------------------------------------------------


def raw_request(es: EdgeSplit, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers as a lower-cased dict, body bytes) of one plain HTTP request to the admin listener,
    SigV4-signed for Evidently with the suite's key (a `Host` in `headers` is what gets signed)."""
    host, port = es.admin.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        signed_host = next((v for k, v in hdrs.items() if k.lower() == "host"), es.admin)
        req = AWSRequest(method=method, url=f"http://{signed_host}{path}", data=body or b"", headers=hdrs)
        SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "evidently", REGION).add_auth(req)
        conn.request(method, path, body=body, headers=dict(req.headers.items()))
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


# --- D5 bucketing ----------------------------------------------------------------------------------


def murmur3_x86_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32 (Austin Appleby), the hash of decision D5."""
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed & 0xFFFFFFFF
    n = len(data)
    rounded = n - (n % 4)
    for i in range(0, rounded, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        k = (k * c2) & 0xFFFFFFFF
        h ^= k
        h = ((h << 13) | (h >> 19)) & 0xFFFFFFFF
        h = (h * 5 + 0xE6546B64) & 0xFFFFFFFF
    tail = data[rounded:]
    k = 0
    if len(tail) >= 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if len(tail) >= 1:
        k ^= tail[0]
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        k = (k * c2) & 0xFFFFFFFF
        h ^= k
    h ^= n
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def bucket(salt: str, stage: str, entity_id: str) -> int:
    """D5: (murmur3_x86_32(utf8("{salt}/{stage}/{entityId}"), 0) * 100000) >> 32, in [0, 100000)."""
    return (murmur3_x86_32(f"{salt}/{stage}/{entity_id}".encode()) * 100000) >> 32


def pick(weights: list[tuple[str, int]], b: int) -> str | None:
    """D5: consecutive ranges in definition order; a bucket past the sum is unassigned (None)."""
    start = 0
    for name, w in weights:
        if start <= b < start + w:
            return name
        start += w
    return None


def dumps(v) -> str:
    return json.dumps(v, separators=(",", ":"))
