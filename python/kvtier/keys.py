"""keys.py — namespaces and chained block keys (key spec v1, docs/key-spec.md), computed by the library."""
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


def _value_bytes(value, what):
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode("ascii")
    raise TypeError(f"namespace {what}: {type(value).__name__} (str, bytes or int expected)")


def ns_key(fields):
    """The namespace key (16 bytes) of [(tag, bytes-like), ...], in order."""
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
    check(lib.kvt_ns_key(arr, len(fields), out))
    return out.raw[:KEY_BYTES]


class Namespace:
    """What makes equal tokens different caches. Fields are hashed in this
    fixed order: model, layout, rank, adapter, salt (each only if given), then
    `fields` [(tag, value), ...] in the order given. Values: str (UTF-8),
    bytes, or int (its decimal text, e.g. rank=0 is b"0").

    `key` is the 16-byte namespace key; bytes(ns) is the same."""

    __slots__ = ("fields", "key")

    def __init__(self, model=None, layout=None, rank=None, adapter=None, salt=None, fields=()):
        named = [(NS_MODEL, model), (NS_LAYOUT, layout), (NS_RANK, rank),
                 (NS_ADAPTER, adapter), (NS_SALT, salt)]
        flds = [(tag, _value_bytes(v, str(tag))) for tag, v in named if v is not None]
        flds += [(int(tag), _value_bytes(v, str(tag))) for tag, v in fields]
        self.fields = tuple(flds)
        self.key = ns_key(flds)

    def keys(self, tokens, block_tokens):
        """keys(tokens, self, block_tokens)."""
        return keys(tokens, self, block_tokens)

    def __bytes__(self):
        return self.key

    def __eq__(self, other):
        return isinstance(other, Namespace) and other.key == self.key

    def __hash__(self):
        return hash(self.key)

    def __repr__(self):
        return f"Namespace({list(self.fields)!r}, key={self.key.hex()})"


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


def keys(tokens, ns, block_tokens):
    """The chained keys of every full block of `block_tokens` tokens, as Keys.

    tokens: list of ints, array.array('I'), numpy integer array (uint32
    C-contiguous is read in place), or a u32 memoryview. ns: a Namespace, a
    16-byte parent key (the key of the block before tokens[0], to continue a
    chain), or None for the empty namespace."""
    if ns is None:
        parent = ns_key([])
    elif isinstance(ns, Namespace):
        parent = ns.key
    else:
        parent = _one_key(ns)
    block_tokens = operator.index(block_tokens)
    if not 0 <= block_tokens <= 0xFFFFFFFF:
        raise ValueError(f"block_tokens {block_tokens!r} must be 1 .. 2^32 - 1")
    holds = Holds()
    try:
        addr, n = _tokens(tokens, holds)
        nblocks = n // block_tokens if block_tokens else 0
        out = ctypes.create_string_buffer(max(nblocks, 1) * KEY_BYTES)
        got = check(lib.kvt_key_chain(parent, addr, n, block_tokens, out, nblocks))
    finally:
        holds.release()
    return Keys(out.raw[:got * KEY_BYTES])


def key_hex(key):
    """32 lowercase hex digits of a 16-byte key (kvt_key_hex)."""
    out = ctypes.create_string_buffer(33)
    check(lib.kvt_key_hex(_one_key(key), out))
    return out.value.decode("ascii")
