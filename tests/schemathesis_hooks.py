"""Rules of the service's requests that JSON Schema cannot state, taught to the fuzzer (SCHEMATHESIS_HOOKS): the
schema's description says them, the service answers 422 when they are broken."""

import schemathesis


@schemathesis.hook
def filter_body(ctx, body):
    prefs = body.get("preferences") if isinstance(body, dict) else None
    if isinstance(prefs, dict):
        low, high = prefs.get("min_year"), prefs.get("max_year")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            return False   # min_year <= max_year: a cross-field rule
    return True
