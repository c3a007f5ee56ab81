"""Schemathesis hooks for lockstock: two rules the OpenAPI document states in prose
because JSON Schema cannot express them. Each hook maps a generated case so that the
schema's verdict on it (valid or invalid) is also the server's; neither turns an invalid
case into a valid one or the reverse.

1. Passwords are limited in bytes (bcrypt's 72), JSON Schema lengths count characters.
   Non-ASCII characters of a generated password are replaced by ASCII ones, one for one:
   the character count (what the schema judged) is unchanged, and now equals the byte
   count (what the server judges). The e2e suite tests the byte rule itself
   (`password_length_counts_bytes`).

2. An Idempotency-Key reused with a different body is a 422 by contract: that depends on
   earlier requests, not on the request itself. A valid generated key gets a unique
   suffix (still within 255 printable ASCII characters, still not ending in a space), so
   that unrelated generated purchases, orders and restocks never share a key (purchases
   and orders share one key space per user). Invalid keys are left alone. The e2e suite
   tests reuse (`same_key_different_body_is_422`, `order_keys_replay_refuse_*`,
   `a_keyed_restock_counts_once`).
"""

import itertools
import re

import schemathesis

_KEY = re.compile(r"[!-~](?:[ -~]{0,253}[!-~])?")
_unique = itertools.count()


def _is(case, method, path):
    return case.operation.method.upper() == method and case.operation.path == path


@schemathesis.hook
def map_case(context, case):
    if _is(case, "POST", "/api/auth/register") and isinstance(case.body, dict):
        password = case.body.get("password")
        if isinstance(password, str):
            case.body["password"] = "".join(c if ord(c) < 0x80 else "x" for c in password)
    keyed = (
        _is(case, "POST", "/api/purchases")
        or _is(case, "POST", "/api/orders")
        or _is(case, "POST", "/api/products/{id}/restock")
    )
    if keyed and case.headers:
        for name, key in list(case.headers.items()):
            if name.lower() == "idempotency-key" and isinstance(key, str) and _KEY.fullmatch(key):
                suffix = f"-{next(_unique)}"
                case.headers[name] = key[: 255 - len(suffix)] + suffix
    return case
