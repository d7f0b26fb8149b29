"""Schemathesis hooks for scripts/probe-api.sh.

The OpenAPI document states every rule a schema can; a few rules of the API are stated only
in words there, because no schema keyword can say them: a script's steps name each other, a
contact's variables fit in 1,024 bytes, a day's calling hours do not overlap and end after they
start, a CSV body has a header naming a number column (and a spec beside it), a caller ID's
caps do not contradict each other and its display region is a whole country code. A generated
request that breaks one of them is refused with 400, rightly, so for the requests the probe
sends as *valid* (positive data) these hooks make each such part follow the rule, and leave
everything else as generated. Requests sent as invalid (negative data) are never touched.

And every request gets an `Idempotency-Key` of its own: the generator reuses values (the
document's example key above all), and the same key on a different request is, rightly, 422
`idempotency-key-reused`. A key is made of the generated one and a digest of the request, so
the same request sent again keeps its key and gets its stored answer.
"""

import hashlib
import json
import re

import schemathesis

KEY = re.compile(r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$")

# A script that follows every rule and uses no template variable, so that contacts and
# single calls of any generated campaign need none.
SCRIPT = {
    "caller_name": "the clinic",
    "start": "hello",
    "steps": {
        "hello": {"say": "Hello, this is a reminder from the clinic.", "next": "bye"},
        "bye": {"hangup": True},
    },
}

# A spec for CSV uploads whose generated spec header or query parameter was not one.
SPEC = {"name": "probe", "from": "+12025550199", "script": SCRIPT}

VARS_BYTES = 1024

# The pool the probe registers its caller IDs in, and that its pool campaigns dial from: a
# campaign from a pool without a healthy number is, rightly, 422 `empty-pool`; once a
# `PUT /numbers/{e164}` has run, pool campaigns are accepted.
POOL = "probe"


def is_positive(case):
    meta = getattr(case, "meta", None)
    generation = getattr(meta, "generation", None)
    mode = getattr(generation, "mode", None)
    return bool(mode is not None and mode.is_positive)


def body_is_positive(case):
    """Whether the case's body was generated valid, even when another part of the request
    was not: Schemathesis checks a case again after the hooks change it (every case gets its
    own key), and a case whose only invalid part was one that passes that check (an extra
    header) is then judged valid, so its body must follow the rules too."""
    if is_positive(case):
        return True
    meta = getattr(case, "meta", None)
    is_negative_at = getattr(meta, "is_negative_at", None)
    if is_negative_at is None:
        return False
    try:
        from schemathesis.core.parameters import ParameterLocation
    except ImportError:
        return False
    return not is_negative_at(ParameterLocation.BODY)


def digest(case):
    body = case.body
    if not isinstance(body, (str, bytes)):
        body = json.dumps(body, sort_keys=True, default=str)
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    parts = [
        case.method,
        case.formatted_path,
        json.dumps(case.query or {}, sort_keys=True, default=str),
        str(case.media_type),
        str((case.headers or {}).get("X-Outdial-Spec", "")),
    ]
    h = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass"))
    h.update(body or b"")
    return h.hexdigest()[:32]


def own_key(case):
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and KEY.match(key):
        headers["Idempotency-Key"] = f"{key[:200]}.{digest(case)}"
    elif isinstance(key, str):
        # An invalid key that is empty or invalid only for white space at its ends: HTTP
        # trims that away, so the API would see a valid key or none. Keep the case invalid
        # where the API can see it.
        # (A key the client cannot encode is dropped the same way.)
        headers["Idempotency-Key"] = "key\tinvalid"


def fit_vars(contact):
    """Keeps a contact's variables to what the API takes: names not blank after trimming, in
    1,024 bytes of names and values in all."""
    vars_ = contact.get("vars") if isinstance(contact, dict) else None
    if not isinstance(vars_, dict):
        return
    kept, used = {}, 0
    for name, value in vars_.items():
        if not name.strip():
            continue
        text = "" if value is None else (json.dumps(value) if not isinstance(value, str) else value)
        size = len(name.strip().encode()) + len(text.strip().encode())
        if used + size > VARS_BYTES - 64:
            continue
        kept[name] = value
        used += size
    contact["vars"] = kept


def fit_consent(contact):
    """A consent time the API reads (the schema gives it no pattern)."""
    if isinstance(contact, dict) and "consent_at" in contact:
        contact["consent_at"] = "2026-03-01T14:30:00Z"


def fit_window(window):
    """One range a day, its end after its start."""
    hours = window.get("hours") if isinstance(window, dict) else None
    if not isinstance(hours, dict):
        return
    for day, ranges in hours.items():
        if not isinstance(ranges, list) or not ranges or not isinstance(ranges[0], str):
            continue
        start, _, end = ranges[0].partition("-")
        start, end = sorted([start, end])
        if start == end:
            end = "24:00"
        hours[day] = [f"{start}-{end}"]


def fit_number(body):
    """A caller ID's registration the API takes: in the probe's pool, caps that are whole
    numbers not above the next window's (minute <= hour <= day), and a display region that
    is an area code or a whole country calling code."""
    body["pool"] = POOL
    caps = body.get("caps")
    if isinstance(caps, dict):
        names = [n for n in ("per_minute", "per_hour", "per_day") if caps.get(n) is not None]
        values = sorted(int(caps[n]) for n in names)
        for name, value in zip(names, values):
            caps[name] = value
    region = body.get("display_region")
    if isinstance(region, str) and region.startswith("+"):
        body["display_region"] = "+33"


def whole(section, keep=()):
    """JSON Schema counts 90.0 as an integer; the API reads whole numbers as integers."""
    if not isinstance(section, dict):
        return
    for name, value in section.items():
        if name not in keep and isinstance(value, float) and value.is_integer():
            section[name] = int(value)


def fit_spec(spec):
    if not isinstance(spec, dict):
        return
    if isinstance(spec.get("from"), dict):
        spec["from"]["pool"] = POOL
    whole(spec.get("retry"))
    whole(spec.get("limits"))
    whole(spec.get("pacing"), keep=("calls_per_second",))
    if "script" in spec:
        spec["script"] = json.loads(json.dumps(SCRIPT))
    if "window" in spec:
        fit_window(spec["window"])


def fit_csv(case):
    """A CSV body with a number column and the generated text as a variable, and a spec."""
    text = case.body if isinstance(case.body, str) else ""
    note = text.replace('"', '""')
    case.body = f'to,note\n+12025550100,"{note}"\n'
    headers = case.headers if case.headers is not None else {}
    raw = headers.get("X-Outdial-Spec")
    try:
        spec = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        spec = None
    if not isinstance(spec, dict) or not {"name", "from", "script"} <= spec.keys():
        spec = dict(SPEC)
    fit_spec(spec)
    headers["X-Outdial-Spec"] = json.dumps(spec)
    case.headers = headers
    if case.query:
        case.query.pop("spec", None)


@schemathesis.hook
def before_call(context, case, kwargs):
    if body_is_positive(case):
        body = case.body
        if str(case.media_type).startswith("text/csv"):
            fit_csv(case)
        elif isinstance(body, dict):
            fit_spec(body.get("spec"))
            contacts = body.get("contacts")
            if isinstance(contacts, list):
                for contact in contacts:
                    fit_vars(contact)
                    fit_consent(contact)
            if case.operation.path == "/calls":
                fit_vars(body)
                fit_consent(body)
            if case.operation.path == "/numbers/{e164}":
                fit_number(body)
            if case.operation.path == "/policy":
                if isinstance(body.get("default_hours"), dict):
                    body["default_hours"] = {
                        day: ["09:00-20:00"] for day in body["default_hours"]
                    }
                for cap in (body.get("caps") or []) + (body.get("destination_caps") or []):
                    # JSON Schema counts 90.0 as an integer; the API reads whole numbers.
                    for name in ("max_calls", "per_hours", "per_minutes"):
                        if isinstance(cap, dict) and isinstance(cap.get(name), float):
                            cap[name] = int(cap[name])
                # At most 16 caps and destination caps together, which no schema says.
                caps = body.get("caps") or []
                if isinstance(body.get("destination_caps"), list):
                    del body["destination_caps"][max(0, 16 - len(caps)):]
    own_key(case)
