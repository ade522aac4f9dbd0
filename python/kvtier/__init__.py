"""kvtier — Python binding (ctypes) of libkvtier, a tiered KV-cache block store.

    import kvtier
    ns = kvtier.Namespace(model="llama-3-8b", layout="bf16;NHD;B=16")
    keys = kvtier.keys(tokens, ns, block_tokens=16)
    with kvtier.Store(block_bytes=4096, dram_bytes=1 << 30) as store:
        store.put(keys, blocks)
        hits, tiers = store.lookup(keys)
        store.get(keys[:hits], buffers)
        # a paged cache: one array per layer and K/V, engine page indices
        store.put(keys, kvtier.Layers(kv_arrays, page_indices))
        result = await store.aget(keys, kvtier.Layers(kv_arrays, page_indices))

Errors raise kvtier.KvtierError subclasses named after the C codes
(kvtier.ENOENT, kvtier.ESIZE, ...), generated from the library's own table.
See docs/python.md.
"""
from . import _lib
from ._lib import ABI_MAJOR
from .errors import BY_CODE, BY_NAME, KvtierError, error_class
from .keys import (KEY_BLAKE2B_128, KEY_BYTES, KEY_MODES, KEY_SECRET_MAX, KEY_SECRET_MIN,
                   KEY_XXH3_128, NS_ADAPTER, NS_CUSTOM, NS_LAYOUT, NS_MODEL, NS_RANK, NS_SALT,
                   Keys, Namespace, key_hex, key_mode, keys, ns_key)
from .layers import Layers
from .store import (ADMIT, VICTIMS, IoResult, Store, Ticket, Tier, add_tier, nvme_slot_bytes,
                    slot_bytes)

__version__ = "0.1.0"

#: the path or name libkvtier was loaded from
library_path = _lib.path
#: the C library's "MAJOR.MINOR.PATCH"
library_version = _lib.lib.kvt_version_string().decode()

globals().update(BY_NAME)  # kvtier.EINVAL, kvtier.ENOENT, ...

__all__ = ["KvtierError", "error_class", "BY_CODE", "BY_NAME", "Namespace", "Keys", "keys",
           "ns_key", "key_hex", "Store", "Ticket", "Layers", "Tier", "IoResult",
           "nvme_slot_bytes", "slot_bytes", "add_tier", "VICTIMS", "ADMIT",
           "KEY_BYTES", "NS_MODEL", "NS_LAYOUT", "NS_RANK", "NS_ADAPTER", "NS_SALT",
           "NS_CUSTOM", "KEY_XXH3_128", "KEY_BLAKE2B_128", "KEY_MODES", "KEY_SECRET_MIN",
           "KEY_SECRET_MAX", "key_mode", "ABI_MAJOR", "library_path", "library_version"]
__all__ += sorted(BY_NAME)
