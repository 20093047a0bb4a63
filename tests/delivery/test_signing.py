"""Signatures against the Standard Webhooks test vector and the reference libraries."""

from __future__ import annotations

from standardwebhooks.webhooks import Webhook

from delivery.signing import sign
from hookline.secrets import new_signing_secret

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_matches_the_spec_vector() -> None:
    assert sign([VECTOR_SECRET], VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIG


def test_rotation_signs_with_every_secret_one_space_apart() -> None:
    other = new_signing_secret()
    header = sign([other, VECTOR_SECRET], VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    parts = header.split(" ")
    assert len(parts) == 2 and parts[1] == VECTOR_SIG
    # a receiver holding only the old secret still verifies
    import time

    now = int(time.time())
    for secret in (other, VECTOR_SECRET):
        fresh = sign([other, VECTOR_SECRET], VECTOR_ID, now, VECTOR_BODY)
        headers = {
            "webhook-id": VECTOR_ID,
            "webhook-timestamp": str(now),
            "webhook-signature": fresh,
        }
        Webhook(secret).verify(VECTOR_BODY, headers)
