"""keys.py — namespaces and chained block keys (key spec v1 and the keyed mode, docs/key-spec.md), computed by the library."""
import array
import ctypes
import operator
from collections.abc import Sequence

from ._buffers import Holds
from ._lib import NsField, lib
from .errors import check

KEY_BYTES = 16

# Conventional namespace tags (KVT_NS_* in kvtier.h).
NS_MODEL = 1
NS_LAYOUT = 2
NS_RANK = 3
NS_ADAPTER = 4
NS_SALT = 5
NS_CUSTOM = 255

# Key modes (kvt_key_mode in kvtier.h): how keys are computed.
KEY_XXH3_128 = 0     # key spec v1, the default: fast, no secret
KEY_BLAKE2B_128 = 1  # keyed BLAKE2b-128: collision-resistant, needs a secret
KEY_MODES = {"xxh3-128": KEY_XXH3_128, "blake2b-128": KEY_BLAKE2B_128}
KEY_SECRET_MIN = 16  # KVT_KEY_SECRET_MIN .. _MAX: blake2b-128 secret bytes
KEY_SECRET_MAX = 64


def key_mode(mode):
    """The kvt_key_mode number of a mode: a name of KEY_MODES or a number
    (passed on as it is: the library answers kvtier.EINVAL for unknown ones)."""
    if mode is None:
        return KEY_XXH3_128
    if isinstance(mode, str):
        try:
            return KEY_MODES[mode]
        except KeyError:
            raise ValueError(f"key mode {mode!r}: one of {', '.join(KEY_MODES)}") from None
    mode = operator.index(mode)
    if not 0 <= mode <= 0xFFFFFFFF:
        raise ValueError(f"key mode {mode} is out of range")
    return mode


def _mode_name(mode):
    return next((name for name, m in KEY_MODES.items() if m == mode), str(mode))


def _secret(secret):
    """(bytes or None, length). Text is refused: is "00ff" two bytes or four?"""
    if secret is None:
        return None, 0
    if isinstance(secret, (bytes, bytearray, memoryview)):
        secret = bytes(secret)
        return secret, len(secret)
    raise TypeError(f"secret: {type(secret).__name__} (bytes expected; "
                    "bytes.fromhex() for hex text)")


def _value_bytes(value, what):
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode("ascii")
    raise TypeError(f"namespace {what}: {type(value).__name__} (str, bytes or int expected)")


def ns_key(fields, mode=None, secret=None):
    """The namespace key (16 bytes) of [(tag, bytes-like), ...], in order, in
    key mode `mode` (default xxh3-128) keyed with `secret` (bytes) if the mode
    takes one."""
    mode = key_mode(mode)
    secret, secret_len = _secret(secret)
    fields = [(int(tag), _value_bytes(v, f"tag {tag}")) for tag, v in fields]
    arr = (NsField * max(len(fields), 1))()
    for i, (tag, value) in enumerate(fields):
        if not 0 <= tag <= 0xFFFFFFFF:
            raise ValueError(f"namespace tag {tag} is out of range")
        if len(value) > 0xFFFFFFFF:
            raise ValueError("namespace value longer than 2^32 - 1 bytes")
        arr[i].tag = tag
        arr[i].len = len(value)
        arr[i].data = ctypes.cast(ctypes.c_char_p(value), ctypes.c_void_p).value if value else None
    out = ctypes.create_string_buffer(KEY_BYTES)
    if mode == KEY_XXH3_128 and secret is None:
        check(lib.kvt_ns_key(arr, len(fields), out))
    else:
        check(lib.kvt_ns_key_mode(mode, secret, secret_len, arr, len(fields), out))
    return out.raw[:KEY_BYTES]


class Namespace:
    """What makes equal tokens different caches. Fields are hashed in this
    fixed order: model, layout, rank, adapter, salt (each only if given), then
    `fields` [(tag, value), ...] in the order given. Values: str (UTF-8),
    bytes, or int (its decimal text, e.g. rank=0 is b"0").

    mode: the key mode ("xxh3-128", the default, or "blake2b-128"); secret:
    the blake2b-128 secret (bytes, 16..64). The namespace keeps both, and
    keys(tokens, ns, ...) chains in its mode with its secret.

    `key` is the 16-byte namespace key; bytes(ns) is the same."""

    __slots__ = ("fields", "key", "mode", "_secret")

    def __init__(self, model=None, layout=None, rank=None, adapter=None, salt=None, fields=(),
                 mode=None, secret=None):
        named = [(NS_MODEL, model), (NS_LAYOUT, layout), (NS_RANK, rank),
                 (NS_ADAPTER, adapter), (NS_SALT, salt)]
        flds = [(tag, _value_bytes(v, str(tag))) for tag, v in named if v is not None]
        flds += [(int(tag), _value_bytes(v, str(tag))) for tag, v in fields]
        self.fields = tuple(flds)
        self.mode = key_mode(mode)
        self._secret = _secret(secret)[0]
        self.key = ns_key(flds, self.mode, self._secret)

    def keys(self, tokens, block_tokens):
        """keys(tokens, self, block_tokens), in this namespace's mode."""
        return keys(tokens, self, block_tokens)

    def __bytes__(self):
        return self.key

    def __eq__(self, other):
        return isinstance(other, Namespace) and other.key == self.key

    def __hash__(self):
        return hash(self.key)

    def __repr__(self):  # never the secret
        mode = "" if self.mode == KEY_XXH3_128 else f", mode={_mode_name(self.mode)!r}"
        return f"Namespace({list(self.fields)!r}{mode}, key={self.key.hex()})"


class Keys(Sequence):
    """A sequence of 16-byte keys packed back to back in one bytes object
    (`raw`), which is what the library reads: passing a Keys to a Store
    method copies nothing. k[i] is bytes, k[a:b] is a Keys."""

    __slots__ = ("raw",)

    def __init__(self, keys=b""):
        if isinstance(keys, Keys):
            raw = keys.raw
        elif isinstance(keys, (bytes, bytearray, memoryview)):
            raw = bytes(keys)
        else:
            raw = b"".join(_one_key(k) for k in keys)
        if len(raw) % KEY_BYTES:
            raise ValueError(f"{len(raw)} bytes is not a whole number of 16-byte keys")
        self.raw = raw

    def __len__(self):
        return len(self.raw) // KEY_BYTES

    def __getitem__(self, i):
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step == 1:
                return Keys(self.raw[start * KEY_BYTES:max(start, stop) * KEY_BYTES])
            return Keys([self[j] for j in range(start, stop, step)])
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("key index out of range")
        return self.raw[i * KEY_BYTES:(i + 1) * KEY_BYTES]

    def __iter__(self):
        raw = self.raw
        return (raw[j:j + KEY_BYTES] for j in range(0, len(raw), KEY_BYTES))

    def __eq__(self, other):
        if isinstance(other, Keys):
            return self.raw == other.raw
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    def __hash__(self):
        return hash(self.raw)

    def __add__(self, other):
        return Keys(self.raw + Keys(other).raw)

    def __bytes__(self):
        return self.raw

    def hex(self):
        """[32 lowercase hex digits per key] (as kvt_key_hex prints)."""
        return [k.hex() for k in self]

    def __repr__(self):
        return f"Keys({self.hex()!r})"


def _one_key(k):
    if isinstance(k, Namespace):
        return k.key
    if not isinstance(k, (bytes, bytearray, memoryview)) or len(k) != KEY_BYTES:
        raise ValueError(f"a key is 16 bytes; got {type(k).__name__} of "
                         f"{len(k) if hasattr(k, '__len__') else '?'}")
    return bytes(k)


def pack(keys):
    """(bytes of n packed keys, n) from a Keys, a bytes-like of 16*n bytes, or
    an iterable of 16-byte keys."""
    if isinstance(keys, Keys):
        raw = keys.raw
    elif isinstance(keys, bytes) and len(keys) % KEY_BYTES == 0:
        raw = keys
    else:
        raw = Keys(keys).raw
    return raw, len(raw) // KEY_BYTES


def _tokens(tokens, holds):
    """(address or None, count) of the tokens as a u32 array; zero-copy for
    array('I'), uint32 numpy arrays and u32 memoryviews, a copy otherwise."""
    if isinstance(tokens, array.array) and tokens.typecode in "IL" and tokens.itemsize == 4:
        obj = tokens
    elif hasattr(tokens, "__array_interface__"):  # numpy, without importing it
        typestr = tokens.__array_interface__["typestr"]
        if typestr in ("<u4", "|u4") and tokens.flags["C_CONTIGUOUS"]:
            obj = tokens
        elif typestr[1] in "iu":
            flat = tokens.reshape(-1)
            if flat.size and (int(flat.min()) < 0 or int(flat.max()) > 0xFFFFFFFF):
                raise ValueError("token ids must be 0 .. 2^32 - 1")
            obj = flat.astype("<u4")
        else:
            raise TypeError(f"tokens of dtype {typestr} (integer arrays only)")
    elif isinstance(tokens, memoryview) and tokens.itemsize == 4 and \
            tokens.format.lstrip("@=<") == "I":
        obj = tokens
    else:
        try:
            obj = array.array("I", tokens)
        except OverflowError:
            raise ValueError("token ids must be 0 .. 2^32 - 1") from None
    if len(obj) == 0:
        return None, 0
    addr, nbytes = holds.buffer(obj, False, "tokens")
    return addr, nbytes // 4


def keys(tokens, ns, block_tokens, *, mode=None, secret=None):
    """The chained keys of every full block of `block_tokens` tokens, as Keys.

    tokens: list of ints, array.array('I'), numpy integer array (uint32
    C-contiguous is read in place), or a u32 memoryview. ns: a Namespace, a
    16-byte parent key (the key of the block before tokens[0], to continue a
    chain), or None for the empty namespace.

    A Namespace brings its key mode and secret. For a parent key or None,
    `mode` and `secret` say them (default: xxh3-128, no secret)."""
    if isinstance(ns, Namespace):
        if mode is not None or secret is not None:
            raise ValueError("keys(): a Namespace carries its own mode and secret")
        mode, secret = ns.mode, ns._secret
        parent = ns.key
    else:
        mode = key_mode(mode)
        parent = ns_key([], mode, secret) if ns is None else _one_key(ns)
    secret, secret_len = _secret(secret)
    plain = mode == KEY_XXH3_128 and secret is None
    block_tokens = operator.index(block_tokens)
    if not 0 <= block_tokens <= 0xFFFFFFFF:
        raise ValueError(f"block_tokens {block_tokens!r} must be 1 .. 2^32 - 1")
    holds = Holds()
    try:
        addr, n = _tokens(tokens, holds)
        nblocks = n // block_tokens if block_tokens else 0
        out = ctypes.create_string_buffer(max(nblocks, 1) * KEY_BYTES)
        if plain:
            got = check(lib.kvt_key_chain(parent, addr, n, block_tokens, out, nblocks))
        else:
            got = check(lib.kvt_key_chain_mode(mode, secret, secret_len, parent, addr, n,
                                               block_tokens, out, nblocks))
    finally:
        holds.release()
    return Keys(out.raw[:got * KEY_BYTES])


def key_hex(key):
    """32 lowercase hex digits of a 16-byte key (kvt_key_hex)."""
    out = ctypes.create_string_buffer(33)
    check(lib.kvt_key_hex(_one_key(key), out))
    return out.value.decode("ascii")
