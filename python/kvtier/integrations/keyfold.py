"""keyfold.py — kvtier keys from the keys engines compute themselves (kvt_key_fold, docs/key-spec.md "Folding engine keys")."""
import ctypes

from .._lib import lib
from ..errors import check
from ..keys import KEY_BYTES, NS_CUSTOM, Keys, Namespace, _one_key


def fold(ns, data):
    """The kvtier key (16 bytes) of engine key bytes `data` under namespace
    `ns` (a Namespace or a 16-byte namespace key)."""
    data = bytes(data)
    out = ctypes.create_string_buffer(KEY_BYTES)
    check(lib.kvt_key_fold(_one_key(ns), data, len(data), out))
    return out.raw[:KEY_BYTES]


def fold_many(ns, items):
    """Keys of several engine keys. items: byte strings; when they all have
    one length they are folded in one C call (kvt_key_fold_many)."""
    items = [bytes(i) for i in items]
    if not items:
        return Keys()
    ns = _one_key(ns)
    n = len(items)
    width = len(items[0])
    if all(len(i) == width for i in items):
        out = ctypes.create_string_buffer(n * KEY_BYTES)
        check(lib.kvt_key_fold_many(ns, b"".join(items), width, n, out))
        return Keys(out.raw[:n * KEY_BYTES])
    return Keys(b"".join(fold(ns, i) for i in items))


# ---------------------------------------------------------------- vLLM

def vllm_namespace(model, *, tp_rank=0, tp_size=1, pp_rank=0, pp_size=1, layout=None,
                   salt=None):
    """What a vLLM block hash leaves out: the model (vLLM's hash seed does not
    include it), the worker's place among ranks, and the KV layout."""
    return Namespace(model=model, layout=layout,
                     rank=f"tp{tp_rank}/{tp_size};pp{pp_rank}/{pp_size}", salt=salt)


def vllm_bytes(block_hash, group=0):
    """The fold input of a vLLM block: its hash bytes ‖ u32 big-endian KV
    cache group index (the layout of vLLM's BlockHashWithGroupId)."""
    if not 0 <= int(group) <= 0xFFFFFFFF:
        raise ValueError(f"group {group} is out of range")
    return bytes(block_hash) + int(group).to_bytes(4, "big")


def vllm_keys(ns, block_hashes, group=0):
    """Keys of vLLM block hashes (bytes) of one KV cache group."""
    return fold_many(ns, [vllm_bytes(h, group) for h in block_hashes])


# ---------------------------------------------------------------- SGLang

def sglang_namespace(model_name, *, tp_rank=0, tp_size=1, pp_rank=0, pp_size=1,
                     is_mla_model=False, attn_cp_rank=0, attn_cp_size=1, layout=None):
    """The namespace of one SGLang storage backend instance (its
    HiCacheStorageConfig): what SGLang's own backends put in their key
    suffix. MLA models hold the same KV on every TP rank, so the TP rank is
    left out for them, as SGLang does, and all ranks share blocks."""
    rank = [] if is_mla_model else [f"tp{tp_rank}/{tp_size}"]
    if pp_size > 1:
        rank.append(f"pp{pp_rank}/{pp_size}")
    if attn_cp_size > 1:
        rank.append(f"cp{attn_cp_rank}/{attn_cp_size}")
    return Namespace(model=model_name or "", layout=layout, rank=";".join(rank))


def sglang_bytes(key, pool=None):
    """The fold input of an SGLang page key: the key string (a sha256 hex
    digest chained over pages) in UTF-8, and for pools other than the KV pool
    (Mamba, SWA, indexer...) "." and the pool name after it."""
    if pool is not None and str(pool) not in ("kv", "__default__"):
        key = f"{key}.{pool}"
    return key.encode("utf-8")


def sglang_keys(ns, keys, pool=None):
    return fold_many(ns, [sglang_bytes(k, pool) for k in keys])


# ---------------------------------------------------------------- LMCache

def lmcache_namespace(model_name, world_size, worker_id, *, fmt=None, dtype=None, tags=None):
    """The namespace of an LMCache CacheEngineKey's fields other than the
    chunk hash: model, format and dtype (layout), worker id of world size
    (rank), and its tags (request configs) as a custom field, in order."""
    layout = ";".join(str(x) for x in (fmt, dtype) if x is not None) or None
    fields = ()
    if tags:
        fields = ((NS_CUSTOM, "%".join(f"{k}={v}" for k, v in dict(tags).items())),)
    return Namespace(model=model_name, layout=layout, rank=f"{worker_id}/{world_size}",
                     fields=fields)


def lmcache_bytes(chunk_hash):
    """The fold input of an LMCache chunk hash: its text as LMCache's
    to_string() writes it (an int in decimal, a str as it is), UTF-8."""
    return str(chunk_hash).encode("utf-8")


def lmcache_key_namespace(key):
    """lmcache_namespace() of a CacheEngineKey-like object (duck typed: fmt,
    dtype and request_configs/tags are optional, as they vary between
    LMCache versions)."""
    tags = getattr(key, "tags", None) or getattr(key, "request_configs", None)
    return lmcache_namespace(key.model_name, key.world_size, key.worker_id,
                             fmt=getattr(key, "fmt", None),
                             dtype=_dtype_name(getattr(key, "dtype", None)), tags=tags)


def _dtype_name(dtype):
    if dtype is None:
        return None
    return str(dtype).replace("torch.", "")


def lmcache_key(key):
    """The kvtier key of a CacheEngineKey-like object."""
    return fold(lmcache_key_namespace(key), lmcache_bytes(key.chunk_hash))
