"""Verifies deliveries recorded by the events tests with the official Standard Webhooks library.

Reads one JSON object on stdin: {"secret": "whsec_...", "now": <unix seconds>, "deliveries":
[{"headers": {...}, "body": "<the body as received>"}]} and prints one JSON line:
{"verified": [true|false, ...], "errors": [...]}.

The library checks the signature and that webhook-timestamp is within five minutes of its own
clock. Herald's clock in the tests is the test's (moved by hours and days), so the library is
given that moment as "now"; the signature check itself is the library's, unchanged.
"""

import datetime as _dt
import json
import sys

import standardwebhooks.webhooks as webhooks
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

request = json.load(sys.stdin)
moment = _dt.datetime.fromtimestamp(request["now"], tz=_dt.timezone.utc)


class TestClock(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return moment if tz is None else moment.astimezone(tz)


webhooks.datetime = TestClock

verified, errors = [], []
for delivery in request["deliveries"]:
    try:
        Webhook(request["secret"]).verify(delivery["body"], delivery["headers"])
        verified.append(True)
        errors.append(None)
    except WebhookVerificationError as e:
        verified.append(False)
        errors.append(str(e))
print(json.dumps({"verified": verified, "errors": errors}))
