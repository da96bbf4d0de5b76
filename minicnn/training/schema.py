"""One check for the JSON records a user can edit by hand: a run's ``config.json`` and the
``meta`` of ``checkpoint.npz``.

A schema is a dict ``{field: rule}``; a rule is made by :func:`integer`, :func:`number`,
:func:`choice`, :func:`boolean`, :func:`text`, :func:`record`, :func:`list_of` or
:func:`rng_state` and knows the type and range it accepts. :func:`check_record` refuses
a record with a missing, unknown or invalid field in one line that names the field and
the file::

    runs/a/config.json: field 'batch_size' must be an integer >= 1, got '64' (a str)
"""
import math

import numpy as np

_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


class Rule:
    """A check of one value: ``problem(value)`` is None or what the value must be."""

    def __init__(self, description, test, nullable=False):
        self.description, self.test, self.nullable = description, test, nullable

    def problem(self, value, name, path=None):
        """None, or one line saying that ``name`` (e.g. ``field 'lr'``) must be ...;
        ``path`` is the raw dotted name that nested records extend."""
        if value is None and self.nullable:
            return None
        try:
            ok = self.test(value, name if path is None else path)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError):
            ok = False
        if ok is True:
            return None
        if isinstance(ok, str):
            return ok  # a nested field's own one-line message
        return (f"{name} must be {self.description}{' or null' if self.nullable else ''}, "
                f"got {_show(value)}")


def _show(value):
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    if value is None or (_is_number(value)):
        return text
    return f"{text} (a {type(value).__name__})"


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _range(lo, hi, lo_open=False, hi_open=False):
    left = "" if lo is None else (f"> {lo}" if lo_open else f">= {lo}")
    right = "" if hi is None else (f"< {hi}" if hi_open else f"<= {hi}")
    return " and ".join(s for s in (left, right) if s)


def integer(lo=None, hi=None, nullable=False):
    """A JSON integer (not a bool, not 3.0) in ``[lo, hi]``."""
    where = _range(lo, hi)
    return Rule("an integer" + (f" {where}" if where else ""),
                lambda v, _: _is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi),
                nullable)


def number(lo=None, hi=None, lo_open=False, nullable=False, hi_open=False):
    """A finite JSON number in ``[lo, hi]`` (open at ``lo`` with ``lo_open``, at ``hi``
    with ``hi_open``)."""
    where = _range(lo, hi, lo_open, hi_open)
    return Rule("a finite number" + (f" {where}" if where else ""),
                lambda v, _: _is_number(v) and math.isfinite(v)
                and (lo is None or (v > lo if lo_open else v >= lo))
                and (hi is None or (v < hi if hi_open else v <= hi)), nullable)


def choice(*names, nullable=False):
    """One of the strings ``names``."""
    listed = ", ".join(repr(n) for n in names)
    return Rule(f"one of {listed}" if len(names) > 1 else listed,
                lambda v, _: isinstance(v, str) and v in names, nullable)


def boolean():
    """true or false."""
    return Rule("true or false", lambda v, _: isinstance(v, bool))


def text(nullable=False):
    """Any string."""
    return Rule("a string", lambda v, _: isinstance(v, str), nullable)


def record(schema, optional=(), nullable=False):
    """A JSON object checked field by field with :func:`check_fields`."""
    def test(v, path):
        if not isinstance(v, dict):
            return False
        problem = check_fields(v, schema, optional, prefix=f"{path}.")
        return True if problem is None else problem
    return Rule("an object", test, nullable)


def list_of(rule, what):
    """A JSON array whose every item passes ``rule``."""
    def test(v, path):
        if not isinstance(v, list):
            return False
        for i, item in enumerate(v):
            problem = rule.problem(item, field(f"{path}[{i}]"), f"{path}[{i}]")
            if problem:
                return problem
        return True
    return Rule(f"a list of {what}", test)


def rng_state(nullable=False):
    """The ``bit_generator.state`` dict of a numpy BitGenerator (PCG64, MT19937, ...)."""
    def test(v, _):
        if not isinstance(v, dict) or v.get("bit_generator") not in _BIT_GENERATORS:
            return False
        getattr(np.random, v["bit_generator"])().state = v  # raises on a malformed state
        return True
    return Rule("the state of a numpy random Generator", test, nullable)


def field(name):
    """How a message names a field: ``field 'lr'``."""
    return f"field {name!r}"


def check_fields(rec, schema, optional=(), prefix="", label=field):
    """The first problem of the dict ``rec`` against ``schema`` as one line, or None.

    ``label(name)`` names a field in the message (``--lr`` for a command-line flag).
    """
    missing = [k for k in schema if k not in rec and k not in optional]
    if missing:
        return f"{label(prefix + missing[0])} is missing"
    unknown = [k for k in rec if k not in schema]
    if unknown:
        known = ", ".join(schema)
        return f"{label(prefix + str(unknown[0]))} is unknown (known fields: {known})"
    for key, rule in schema.items():
        if key in rec:
            problem = rule.problem(rec[key], label(prefix + key), prefix + key)
            if problem:
                return problem
    return None


def check_record(rec, schema, where, what="a JSON object", optional=(), label=field):
    """Raise ``ValueError("<where>: <problem>")`` unless ``rec`` is a dict that passes
    ``schema`` (every field present except ``optional`` ones, no unknown field)."""
    if not isinstance(rec, dict):
        raise ValueError(f"{where}: must hold {what}, got {_show(rec)}")
    problem = check_fields(rec, schema, optional, label=label)
    if problem:
        raise ValueError(f"{where}: {problem}")
    return rec
