"""errors.py — one exception class per KVT_E* code, generated from the library's own error table.

Names and values come from the loaded library (kvt_error_name / kvt_strerror
for codes 0 down to -64), so they cannot drift from include/kvtier.h. Scheme:
the symbol without its "KVT_" prefix, e.g. KVT_ENOENT -> kvtier.ENOENT, all
subclasses of KvtierError. Every class carries `code` (the negative int),
`symbol` ("KVT_ENOENT") and `description` (kvt_strerror text).
"""
from ._lib import last_error, lib

LOWEST_CODE = -64


class KvtierError(Exception):
    """A kvtier call failed. `code` is the negative KVT_E* value, `message`
    the library's text (kvt_last_error: the code's text plus detail)."""
    code = None
    symbol = None
    description = None

    def __init__(self, code, message=None):
        if message is None:
            message = lib.kvt_strerror(code).decode("utf-8", "replace")
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self):
        name = lib.kvt_error_name(self.code)
        name = name.decode() if name else "unknown error"
        return f"{name} ({self.code}): {self.message}"


def _build():
    classes, seen = {}, set()
    for code in range(0, LOWEST_CODE - 1, -1):
        raw = lib.kvt_error_name(code)
        if raw is None:
            continue
        symbol = raw.decode("ascii")
        if code == 0:
            continue  # KVT_OK is not an error
        if not symbol.startswith("KVT_E"):
            raise ImportError(f"kvtier: error {code} is named {symbol!r}, not KVT_E*")
        short = symbol[len("KVT_"):]
        if short in seen:
            raise ImportError(f"kvtier: two error codes are named {symbol}")
        seen.add(short)
        description = lib.kvt_strerror(code).decode("utf-8", "replace")
        classes[code] = type(short, (KvtierError,), {
            "code": code, "symbol": symbol, "description": description,
            "__doc__": f"{symbol} ({code}): {description}", "__module__": "kvtier"})
    return classes


#: {code: exception class}, e.g. BY_CODE[-9] is kvtier.ENOENT.
BY_CODE = _build()
#: {"ENOENT": class, ...}
BY_NAME = {cls.__name__: cls for cls in BY_CODE.values()}


def error_class(code):
    """The class of a negative code (KvtierError itself for an unknown one)."""
    return BY_CODE.get(code, KvtierError)


def make_error(code, message=None):
    """The exception for code, with this thread's kvt_last_error() text unless
    a message is given. Call it right after the failing call."""
    if message is None:
        message = last_error()
        if message == "no error":  # the failure happened on another thread (async)
            message = lib.kvt_strerror(code).decode("utf-8", "replace")
    return error_class(code)(code, message)


def check(rc):
    """Returns rc when >= 0, raises the code's exception otherwise."""
    if rc < 0:
        raise make_error(rc)
    return rc


def closed_error():
    cls = BY_NAME["ECLOSED"]
    return cls(cls.code, f"{cls.description}: kvtier.Store.close() was called")
