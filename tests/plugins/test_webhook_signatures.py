"""Webhook signature helpers: published vectors, generated vectors, tampering, replay."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from envfence_builtins.webhook_service.webhook_signatures import (
    SignatureError,
    constant_time_equal,
    decode_standard_secret,
    sign_github,
    sign_housecallpro,
    sign_standard,
    verify,
    verify_github,
    verify_housecallpro,
    verify_standard,
)

# GitHub's documented test values (docs.github.com, "Validating webhook deliveries").
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_HEADER = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

# The Standard Webhooks specification's test vector.
STD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STD_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
STD_TS = 1614265330
STD_BODY = '{"test": 2432232314}'
STD_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_github_published_vector_verifies():
    assert sign_github(GITHUB_SECRET, GITHUB_BODY) == GITHUB_HEADER
    verify_github(GITHUB_SECRET, GITHUB_BODY, GITHUB_HEADER)


@pytest.mark.parametrize(
    "secret, body, header",
    [
        ("It's a Secret to Everybody!", GITHUB_BODY, GITHUB_HEADER),
        (GITHUB_SECRET, b"Hello, World?", GITHUB_HEADER),
        (GITHUB_SECRET, GITHUB_BODY, GITHUB_HEADER[:-1] + "8"),
        (GITHUB_SECRET, GITHUB_BODY, GITHUB_HEADER.replace("sha256=", "sha1=")),
        (GITHUB_SECRET, GITHUB_BODY, ""),
    ],
)
def test_github_tampering_is_refused(secret, body, header):
    with pytest.raises(SignatureError):
        verify_github(secret, body, header)


def test_standard_webhooks_published_vector_verifies():
    assert sign_standard(STD_SECRET, STD_ID, STD_TS, STD_BODY) == STD_SIGNATURE
    verify_standard(STD_SECRET, STD_ID, STD_TS, STD_BODY, STD_SIGNATURE, now=STD_TS + 10)
    # Several signatures (a secret being rotated): any one may match.
    verify_standard(STD_SECRET, STD_ID, STD_TS, STD_BODY, f"v1,bm90IGl0 {STD_SIGNATURE}", now=STD_TS)


def test_standard_webhooks_refuses_a_replay_outside_the_tolerance():
    with pytest.raises(SignatureError, match="stale or replayed"):
        verify_standard(STD_SECRET, STD_ID, STD_TS, STD_BODY, STD_SIGNATURE, now=STD_TS + 301)
    verify_standard(STD_SECRET, STD_ID, STD_TS, STD_BODY, STD_SIGNATURE, now=STD_TS + 3600, tolerance=3601)


@pytest.mark.parametrize("field", ["id", "body", "timestamp"])
def test_standard_webhooks_tampering_is_refused(field):
    args = {"id": STD_ID, "body": STD_BODY, "timestamp": STD_TS}
    args[field] = {"id": "msg_other", "body": '{"test": 2432232315}', "timestamp": STD_TS + 1}[field]
    with pytest.raises(SignatureError):
        verify_standard(STD_SECRET, args["id"], args["timestamp"], args["body"], STD_SIGNATURE, now=STD_TS)


@pytest.mark.parametrize(
    "secret, problem",
    [
        ("whsec_not base64!", "not valid base64"),
        ("whsec_", "empty"),
        ("whsec_" + base64.b64encode(b"x" * 16).decode(), "16 bytes"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "65 bytes"),
    ],
)
def test_standard_secret_shape(secret, problem):
    with pytest.raises(SignatureError, match=problem):
        decode_standard_secret(secret)


def test_standard_secret_of_64_bytes_is_accepted():
    assert len(decode_standard_secret("whsec_" + base64.b64encode(b"k" * 64).decode())) == 64


def test_standard_secret_without_prefix_or_padding_is_accepted():
    key = base64.b64decode(STD_SECRET[6:])
    assert decode_standard_secret(STD_SECRET[6:]) == key
    padded = "whsec_" + base64.b64encode(b"k" * 32).decode()
    assert padded.endswith("=")
    assert decode_standard_secret(padded.rstrip("=")) == b"k" * 32
    verify_standard(STD_SECRET[6:], STD_ID, STD_TS, STD_BODY, STD_SIGNATURE, now=STD_TS)


def test_standard_webhooks_refuses_a_timestamp_in_milliseconds():
    stamp = STD_TS * 1000
    signature = sign_standard(STD_SECRET, STD_ID, stamp, STD_BODY)
    with pytest.raises(SignatureError, match="ahead of now"):
        verify_standard(STD_SECRET, STD_ID, stamp, STD_BODY, signature, now=STD_TS)


def _reference_accepts(secret, headers, body) -> bool:
    from standardwebhooks.webhooks import Webhook

    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except Exception:  # the reference also fails with ValueError or binascii.Error on some malformed input
        return False
    return True


def _ours_accepts(secret, headers, body) -> bool:
    try:
        verify("standard", secret, headers, body)
    except SignatureError:
        return False
    return True


def _standard_cases():
    import time

    now = int(time.time())
    key32 = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    body = '{"type":"invoice.paid","id":7}'

    def headers(secret=STD_SECRET, stamp=now, msg="msg_1", content=body, signature=None):
        sig = signature if signature is not None else sign_standard(secret, msg, stamp, content)
        return {"webhook-id": msg, "webhook-timestamp": str(stamp), "webhook-signature": sig}

    good = sign_standard(STD_SECRET, "msg_1", now, body)
    return [
        ("valid", STD_SECRET, headers()),
        ("no whsec_ prefix", STD_SECRET[6:], headers()),
        ("unpadded secret", key32.rstrip("="), headers(secret=key32)),
        ("padded secret", key32, headers(secret=key32)),
        ("milliseconds", STD_SECRET, headers(stamp=now * 1000)),
        ("4 minutes old", STD_SECRET, headers(stamp=now - 240)),
        ("6 minutes old", STD_SECRET, headers(stamp=now - 360)),
        ("4 minutes ahead", STD_SECRET, headers(stamp=now + 240)),
        ("6 minutes ahead", STD_SECRET, headers(stamp=now + 360)),
        ("fractional seconds", STD_SECRET, {**headers(), "webhook-timestamp": f"{now}.0"}),
        ("not a number", STD_SECRET, {**headers(), "webhook-timestamp": "soon"}),
        ("rotated: second entry", STD_SECRET, headers(signature=f"v1,bm90IGl0 {good}")),
        ("v2 entry only", STD_SECRET, headers(signature="v2," + good[3:])),
        ("unpadded signature", STD_SECRET, headers(signature=good.rstrip("="))),
        ("other body", STD_SECRET, {**headers(), "webhook-signature": sign_standard(STD_SECRET, "msg_1", now, "{}")}),
        ("other id", STD_SECRET, {**headers(), "webhook-id": "msg_2"}),
        ("no signature", STD_SECRET, {**headers(), "webhook-signature": ""}),
        ("wrong key", key32, headers()),
    ], body


def test_standard_webhooks_agrees_with_the_reference_library():
    cases, body = _standard_cases()
    verdicts = {name: (_ours_accepts(secret, h, body), _reference_accepts(secret, h, body)) for name, secret, h in cases}
    assert {name: ours for name, (ours, _) in verdicts.items()} == {name: ref for name, (_, ref) in verdicts.items()}
    # The case list holds both verdicts, so agreement is not agreement on "always" or "never".
    assert verdicts["valid"] == (True, True) and verdicts["milliseconds"] == (False, False)
    assert verdicts["no whsec_ prefix"] == (True, True) and verdicts["unpadded secret"] == (True, True)


def test_housecallpro_generated_vector():
    secret, body, ts = "hcp-webhook-secret-0123456789abcdef", b'{"event":"job.created","job":{"id":"job_1"}}', "1700000000"
    expected = hmac.new(secret.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign_housecallpro(secret, body, ts) == expected
    verify_housecallpro(secret, body, expected, ts, now=1700000000 + 5)
    verify_housecallpro(secret, body, expected.upper(), ts, now=1700000000)  # hex is case-insensitive
    with pytest.raises(SignatureError, match="does not match"):
        verify_housecallpro(secret, body + b" ", expected, ts, now=1700000000)
    with pytest.raises(SignatureError, match="stale"):
        verify_housecallpro(secret, body, expected, ts, now=1700000000 + 301)
    with pytest.raises(SignatureError, match="missing"):
        verify_housecallpro(secret, body, expected, None, now=1700000000)


def test_housecallpro_timestamp_in_milliseconds_is_checked_in_seconds():
    # envfence's assumption: HousecallPro publishes no description of its signing.
    secret, body, ts = "hcp-webhook-secret-0123456789abcdef", b"{}", "1700000000123"
    verify_housecallpro(secret, body, sign_housecallpro(secret, body, ts), ts, now=1700000001)


def test_verify_dispatches_on_scheme_with_headers_in_any_case():
    verify("github", GITHUB_SECRET, {"x-hub-signature-256": GITHUB_HEADER}, GITHUB_BODY)
    verify("standard", STD_SECRET, {"Webhook-Id": STD_ID, "Webhook-Timestamp": str(STD_TS), "Webhook-Signature": STD_SIGNATURE}, STD_BODY, now=STD_TS)
    ts = "1700000000"
    verify("housecallpro", "s" * 32, {"Api-Timestamp": ts, "Api-Signature": sign_housecallpro("s" * 32, b"{}", ts)}, b"{}", now=1700000000)
    with pytest.raises(ValueError, match="unknown webhook scheme"):
        verify("stripe", "x", {}, b"")


def test_errors_never_quote_the_secret_or_the_expected_signature():
    secret = "canary-webhook-secret-5d1e8f"
    with pytest.raises(SignatureError) as info:
        verify_github(secret, b"body", "sha256=00")
    assert secret not in str(info.value) and sign_github(secret, b"body")[7:] not in str(info.value)


def test_constant_time_equal():
    assert constant_time_equal("abc", b"abc") and not constant_time_equal("abc", "abd")


@pytest.mark.parametrize(("offset", "says"), [
    (10**6, "1000000 s ahead of now (tolerance 300 s): forged, or this machine's clock is behind"),
    (-10**6, "1000000 s old (tolerance 300 s): stale or replayed"),
])
def test_a_timestamp_far_off_says_which_way_and_what_to_check(offset, says):
    stamp = STD_TS + offset
    signature = sign_standard(STD_SECRET, STD_ID, stamp, STD_BODY)
    with pytest.raises(SignatureError) as caught:
        verify_standard(STD_SECRET, STD_ID, stamp, STD_BODY, signature, now=STD_TS)
    assert says in str(caught.value) and "NTP" in str(caught.value)


def test_an_absurd_timestamp_is_refused_in_a_short_message():
    with pytest.raises(SignatureError) as caught:
        verify("housecallpro", "s3cret-hcp", {"api-signature": "0" * 64, "api-timestamp": "1e300"}, b"{}", now=STD_TS)
    assert len(str(caught.value)) < 200 and "ahead of now" in str(caught.value)


def test_github_signature_with_whitespace_around_or_upper_case_hex_verifies():
    body = b'{"zen": "x"}'
    signature = sign_github("gh-secret-1", body)
    for header in (f"  {signature}\t", "sha256=" + signature[7:].upper()):
        verify("github", "gh-secret-1", {"X-Hub-Signature-256": header}, body)
    with pytest.raises(SignatureError):
        verify("github", "gh-secret-1", {"X-Hub-Signature-256": f"{signature},{signature}"}, body)
