"""_lib.py — finds and loads libkvtier.so and declares the prototype of every exported function.

Search order (the first that exists wins; a named library that fails to load
is an error, never skipped):
  1. $KVTIER_LIBRARY: a path to libkvtier.so.
  2. A build directory next to the source tree: <source>/build*/lib/libkvtier.so,
     where <source> is python/.. (only when running from a checkout); the most
     recently built one if there are several.
  3. The system loader: ctypes.util.find_library("kvtier"), then "libkvtier.so.0"
     (an installed library: `meson install`, a distribution package).
"""
import ctypes
import ctypes.util
import glob
import os

# The binding speaks this major version of the C ABI (KVT_VERSION_MAJOR).
ABI_MAJOR = 0


class NsField(ctypes.Structure):
    """kvt_ns_field."""
    _fields_ = [("tag", ctypes.c_uint32), ("len", ctypes.c_uint32), ("data", ctypes.c_void_p)]


class IoOpts(ctypes.Structure):
    """kvt_io_opts."""
    _fields_ = [
        ("size", ctypes.c_uint32),
        ("mem_kind", ctypes.c_uint32),
        ("device", ctypes.c_int32),
        ("flags", ctypes.c_uint32),
        ("stream", ctypes.c_void_p),
        ("retain_s", ctypes.c_uint32),
        ("frags", ctypes.c_uint32),
        ("parent", ctypes.c_void_p),
        ("status", ctypes.c_void_p),
        ("group", ctypes.c_uint64),
        ("frag_first", ctypes.c_uint32),
        ("frag_count", ctypes.c_uint32),
    ]


# kvt_clock_fn and kvt_stat_fn.
CLOCK_FN = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)
STAT_FN = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_uint64, ctypes.c_void_p)

_p = ctypes.c_void_p
_i = ctypes.c_int
_sz = ctypes.c_size_t
_u32 = ctypes.c_uint32
_u64 = ctypes.c_uint64
_i64 = ctypes.c_int64
_s = ctypes.c_char_p

# name -> (restype, argtypes), one entry per KVT_API function of kvtier.h.
# Enums are C ints. Keys, tokens, tier and status arrays are plain pointers so
# that bytes, bytearrays and ctypes arrays pass without copies.
PROTOTYPES = {
    "kvt_version": (_i, []),
    "kvt_version_string": (_s, []),
    "kvt_strerror": (_s, [_i]),
    "kvt_error_name": (_s, [_i]),
    "kvt_last_error": (_s, []),
    "kvt_ns_key": (_i, [ctypes.POINTER(NsField), _sz, _p]),
    "kvt_key_chain": (_i, [_p, _p, _sz, _u32, _p, _sz]),
    "kvt_key_hex": (_i, [_p, _p]),
    "kvt_ns_key_mode": (_i, [_u32, _p, _sz, ctypes.POINTER(NsField), _sz, _p]),
    "kvt_key_chain_mode": (_i, [_u32, _p, _sz, _p, _p, _sz, _u32, _p, _sz]),
    "kvt_key_fold": (_i, [_p, _p, _sz, _p]),
    "kvt_key_fold_many": (_i, [_p, _p, _sz, _sz, _p]),
    "kvt_config_new": (_i, [ctypes.POINTER(_p)]),
    "kvt_config_free": (None, [_p]),
    "kvt_config_set": (_i, [_p, _i, _i64]),
    "kvt_config_add_tier": (_i, [_p, _s, _s]),
    "kvt_config_tier_find": (_i, [_p, _s]),
    "kvt_config_tier_set": (_i, [_p, _i, _s, _i64]),
    "kvt_config_tier_set_str": (_i, [_p, _i, _s, _s]),
    "kvt_config_set_clock": (_i, [_p, CLOCK_FN, _p]),
    "kvt_open": (_i, [_p, ctypes.POINTER(_p)]),
    "kvt_close": (_i, [_p]),
    "kvt_slot_bytes": (_i, [_s, _u64, ctypes.POINTER(_u64)]),
    "kvt_store_tier_count": (_i, [_p]),
    "kvt_store_tier_name": (_s, [_p, _i]),
    "kvt_store_tier_find": (_i, [_p, _s]),
    "kvt_store_tier_available": (_i, [_p, _i]),
    "kvt_clock_now": (_u64, [_p]),
    "kvt_clock_set": (_i, [_p, _u64]),
    "kvt_expire": (_i, [_p]),
    "kvt_lookup": (_i, [_p, _p, _sz, _p, _u32]),
    "kvt_contains": (_i, [_p, _p, _sz, _p]),
    "kvt_touch": (_i, [_p, _p, _sz]),
    "kvt_pin": (_i, [_p, _p, _sz, _u32]),
    "kvt_release": (_i, [_p, _p, _sz, _p]),
    "kvt_put": (_i, [_p, _p, _sz, _p, ctypes.POINTER(IoOpts), ctypes.POINTER(_u64)]),
    "kvt_get": (_i, [_p, _p, _sz, _p, ctypes.POINTER(IoOpts), ctypes.POINTER(_u64)]),
    "kvt_remove": (_i, [_p, _p, _sz]),
    "kvt_clear": (_i, [_p]),
    "kvt_remove_group": (_i, [_p, _u64]),
    "kvt_flush": (_i, [_p, _p, _sz, _p]),
    "kvt_wait": (_i, [_p, _u64, _i]),
    "kvt_poll": (_i, [_p, _u64]),
    "kvt_eventfd": (_i, [_p]),
    "kvt_events_enable": (_i, [_p, _u32]),
    "kvt_events_take": (_i, [_p, _p, _sz, ctypes.POINTER(_u64)]),
    "kvt_events_fd": (_i, [_p]),
    "kvt_stats": (_i, [_p, STAT_FN, _p]),
    "kvt_stat": (_i, [_p, _s, ctypes.POINTER(_u64)]),
    # shared store (docs/shared.md); the option structs pass as pointers (NULL: defaults)
    "kvt_serve": (_i, [_p, _s, _p, ctypes.POINTER(_p)]),
    "kvt_serve_stop": (_i, [_p]),
    "kvt_serve_stats": (_i, [_p, STAT_FN, _p]),
    "kvt_connect": (_i, [_s, _p, ctypes.POINTER(_p)]),
    "kvt_stats_prometheus": (_i, [_p, _p, _sz]),
}


def _source_root():
    """python/.. when this file sits in a source checkout (python/kvtier/_lib.py)."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    if os.path.isfile(os.path.join(root, "include", "kvtier.h")):
        return root
    return None


def candidates():
    """The places tried, in order, as (how, path-or-name)."""
    env = os.environ.get("KVTIER_LIBRARY")
    if env:
        return [("KVTIER_LIBRARY", env)]
    found = []
    root = _source_root()
    if root:
        libs = []
        for p in glob.glob(os.path.join(root, "build*", "lib", "libkvtier.so")):
            try:
                libs.append((os.path.getmtime(p), p))
            except OSError:  # a dangling link: that build is half done
                pass
        found += [("build directory", p) for _, p in sorted(libs, reverse=True)]
    name = ctypes.util.find_library("kvtier")
    if name:
        found.append(("system loader", name))
    found.append(("system loader", "libkvtier.so.0"))
    return found


def load():
    """Loads the library, declares every prototype and checks the ABI version.
    Raises ImportError with every place tried when nothing loads."""
    tried = []
    lib = None
    for how, path in candidates():
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as e:
            tried.append(f"  {how}: {path}: {e}")
            if how == "KVTIER_LIBRARY":
                break
    if lib is None:
        raise ImportError("kvtier: cannot load libkvtier.so; tried:\n" + "\n".join(tried) +
                          "\nSet KVTIER_LIBRARY=/path/to/libkvtier.so, or build it "
                          "(meson setup build && ninja -C build), or install it (meson install).")
    missing = []
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise ImportError(f"kvtier: {lib._name} lacks {', '.join(missing)}: "
                          "an older or foreign libkvtier.so?")
    version = lib.kvt_version()
    if version // 10000 != ABI_MAJOR:
        raise ImportError(f"kvtier: {lib._name} is version "
                          f"{lib.kvt_version_string().decode()} (ABI major {version // 10000}); "
                          f"this binding needs ABI major {ABI_MAJOR}")
    return lib


lib = load()
path = lib._name


def last_error():
    """This thread's message for the last failed call (kvt_last_error)."""
    return lib.kvt_last_error().decode("utf-8", "replace")
