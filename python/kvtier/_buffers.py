"""_buffers.py — turns Python buffers and tensors into the pointer arrays kvt_put/kvt_get take, without copies.

Objects with the buffer protocol (bytes, bytearray, memoryview, array.array,
mmap) are held through PyObject_GetBuffer until released, so their memory can
neither move nor be freed while the library uses it (an exported bytearray
refuses to resize). NumPy arrays (__array_interface__) and PyTorch tensors
(recognised by data_ptr, element_size, numel, is_contiguous and device,
without importing torch) give their address directly and are kept referenced,
which keeps their memory in place; that is cheaper than an export.
"""
import array
import ctypes
import sys

MEM_HOST = 0  # KVT_MEM_HOST
MEM_CUDA = 1  # KVT_MEM_CUDA

PyBUF_SIMPLE = 0
PyBUF_WRITABLE = 1


class _PyBuffer(ctypes.Structure):
    """Py_buffer (stable ABI since Python 3.11)."""
    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None


def is_tensor(obj):
    """A PyTorch tensor (or anything that quacks like one)."""
    t = type(obj)
    return (hasattr(t, "data_ptr") and hasattr(t, "element_size") and hasattr(t, "numel")
            and hasattr(t, "is_contiguous") and hasattr(obj, "device"))


class Holds:
    """Keeps buffers exported and objects referenced until release()."""

    def __init__(self):
        self._views = []
        self._objs = []

    def buffer(self, obj, writable, what):
        """(address, nbytes) of a C-contiguous buffer, held until release()."""
        view = _PyBuffer()
        try:
            _get_buffer(obj, ctypes.byref(view), PyBUF_WRITABLE if writable else PyBUF_SIMPLE)
        except TypeError:
            raise TypeError(f"{what}: {type(obj).__name__} is neither a buffer nor a tensor") \
                from None
        except (BufferError, ValueError) as e:
            if writable and "writ" in str(e).lower():
                raise TypeError(f"{what}: {type(obj).__name__} is read-only; get needs "
                                "writable memory (bytearray, numpy array, ...)") from None
            raise ValueError(f"{what}: {e} (buffers must be C-contiguous)") from None
        self._views.append(view)
        return view.buf or 0, view.len

    def keep(self, obj):
        self._objs.append(obj)

    def release(self):
        views, self._views = self._views, []
        for v in views:
            _release_buffer(ctypes.byref(v))
        self._objs = []

    def __del__(self):
        if self._views:
            self.release()


def _what(i, f):
    return f"block {i}" + ("" if f is None else f" fragment {f}") if i is not None else \
        "the batch buffer"


def locate(obj, writable, holds, i=None, f=None):
    """(address, nbytes, mem_kind, device) of one buffer or tensor; i and f
    name it in errors (block, fragment)."""
    ai = getattr(obj, "__array_interface__", None)
    if ai is not None and type(ai) is dict:
        # numpy: read the address directly (cheaper than a buffer export) and
        # keep the array referenced, which keeps its memory in place.
        addr, readonly = ai["data"]
        if ai.get("strides") is not None:
            raise ValueError(f"{_what(i, f)}: array is not C-contiguous")
        if writable and readonly:
            raise TypeError(f"{_what(i, f)}: array is read-only; get needs writable memory")
        holds.keep(obj)
        return addr, obj.nbytes, MEM_HOST, 0
    if is_tensor(obj):
        if not obj.is_contiguous():
            raise ValueError(f"{_what(i, f)}: tensor is not contiguous (call .contiguous())")
        holds.keep(obj)
        dev = obj.device
        if getattr(dev, "type", "cpu") == "cuda":
            index = dev.index if dev.index is not None else obj.get_device()
            kind, device = MEM_CUDA, index
        elif getattr(dev, "type", "cpu") == "cpu":
            kind, device = MEM_HOST, 0
        else:
            raise ValueError(f"{_what(i, f)}: tensors on {dev} are not supported "
                             "(cpu or cuda only)")
        return obj.data_ptr(), obj.numel() * obj.element_size(), kind, device
    addr, nbytes = holds.buffer(obj, writable, _what(i, f))
    return addr, nbytes, MEM_HOST, 0


_PTR_CODE = "Q" if ctypes.sizeof(ctypes.c_void_p) == 8 else "I"


def pointers(buffers, n, frags, block_bytes, writable, holds):
    """The n * frags fragment pointers of a batch, as (c_void_p array, mem_kind, device).

    buffers is either one object of n * block_bytes (the whole batch, blocks
    back to back), or a list/tuple of n entries, each one object of block_bytes
    or a list/tuple of `frags` objects of block_bytes / frags each."""
    frag_bytes = block_bytes // frags
    addrs = array.array(_PTR_CODE)
    kinds = set()

    def one(obj, want, i, f=None):
        addr, nbytes, kind, device = locate(obj, writable, holds, i, f)
        if nbytes != want:
            raise ValueError(f"{_what(i, f)}: {nbytes} bytes, expected {want}")
        kinds.add((kind, device))
        return addr

    if isinstance(buffers, (list, tuple)):
        if len(buffers) != n:
            raise ValueError(f"{len(buffers)} buffers for {n} keys")
        for i, entry in enumerate(buffers):
            if isinstance(entry, (list, tuple)):
                if len(entry) != frags:
                    raise ValueError(f"block {i}: {len(entry)} fragments, the store has {frags}")
                addrs.extend([one(frag, frag_bytes, i, f) for f, frag in enumerate(entry)])
            else:
                base = one(entry, block_bytes, i)
                addrs.extend(range(base, base + block_bytes, frag_bytes))
    else:
        base = one(buffers, n * block_bytes, None)
        addrs = array.array(_PTR_CODE, range(base, base + n * block_bytes, frag_bytes))
    if len(kinds) > 1:
        raise ValueError("all buffers of one call must be host memory or all on one CUDA "
                         f"device; got {sorted(kinds)}")
    kind, device = kinds.pop() if kinds else (MEM_HOST, 0)
    if len(addrs) != n * frags:  # frag_bytes == 0 cannot happen: frags divides block_bytes
        raise ValueError(f"{len(addrs)} fragment pointers for {n} x {frags}")
    return (ctypes.c_void_p * len(addrs)).from_buffer(addrs), kind, device


def current_stream(device):
    """torch.cuda.current_stream(device).cuda_stream, when torch is loaded."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    return torch.cuda.current_stream(device).cuda_stream


def stream_handle(stream):
    """A cudaStream_t as an int: an int, or an object with .cuda_stream (torch)."""
    if stream is None:
        return None
    if hasattr(stream, "cuda_stream"):
        return int(stream.cuda_stream)
    return int(stream)
