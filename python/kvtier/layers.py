"""layers.py — Layers: a paged KV cache given as one array per fragment position plus block indices.

Engines keep their KV cache as one array (or tensor) per layer and K/V, of
shape [num_pages, ...], a page being one block's share of that layer. A
Layers object names those arrays once; Layers.at(block_indices) picks the
engine pages of a batch. put/get then build the n * frags pointer table with
NumPy vectorised arithmetic (base + index * page stride), with no Python
object per fragment. NumPy is needed for this path only (imported on first
use).
"""
import math

from ._buffers import MEM_CUDA, MEM_HOST


def _np():
    import numpy  # the only part of the binding that needs NumPy
    return numpy


def _describe(obj, i):
    """(address, shape, strides in bytes, itemsize, readonly, mem_kind, device) of
    array i: NumPy (__array_interface__) or a torch-like tensor (duck typed)."""
    ai = getattr(obj, "__array_interface__", None)
    if ai is not None and type(ai) is dict:
        addr, readonly = ai["data"]
        shape = tuple(ai["shape"])
        itemsize = getattr(obj, "itemsize", None)
        if itemsize is None:  # "<f4", "|V16", "<M8[ns]"
            itemsize = int("".join(c for c in ai["typestr"][2:].split("[")[0] if c.isdigit()))
        strides = ai.get("strides")
        if strides is None:  # C-contiguous
            strides, step = [], itemsize
            for d in reversed(shape):
                strides.append(step)
                step *= d
            strides = tuple(reversed(strides))
        return addr, shape, tuple(strides), itemsize, bool(readonly), MEM_HOST, 0
    t = type(obj)
    if hasattr(t, "data_ptr") and hasattr(t, "element_size") and hasattr(t, "stride") \
            and hasattr(obj, "shape") and hasattr(obj, "device"):
        itemsize = int(obj.element_size())
        shape = tuple(int(d) for d in obj.shape)
        strides = tuple(int(s) * itemsize for s in obj.stride())
        dev = obj.device
        dtype = getattr(dev, "type", "cpu")
        if dtype == "cuda":
            index = dev.index if dev.index is not None else obj.get_device()
            kind, device = MEM_CUDA, int(index)
        elif dtype == "cpu":
            kind, device = MEM_HOST, 0
        else:
            raise ValueError(f"layer array {i}: tensors on {dev} are not supported "
                             "(cpu or cuda only)")
        return int(obj.data_ptr()), shape, strides, itemsize, False, kind, device
    raise TypeError(f"layer array {i}: {type(obj).__name__} is neither a NumPy array nor a "
                    "tensor (data_ptr, element_size, stride, shape, device)")


def _page_contiguous(shape, strides, itemsize):
    """Whether one page (an array of this shape and these byte strides) is one
    contiguous run of memory, C order. Dimensions of size 1 have any stride."""
    step = itemsize
    for d, s in zip(reversed(shape), reversed(strides)):
        if d != 1 and s != step:
            return False
        step *= d
    return True


class Layers:
    """A paged KV cache: `arrays[f]` holds fragment f of every block (one
    array per layer and K/V, in the store's fragment order), shaped
    [num_pages, ...] with each page one contiguous run of
    block_bytes / frags bytes; `block_indices` (optional here, see at())
    are the engine pages of a batch, one per key.

    Pages may be strided along the first axis (e.g. K = kv[:, 0] of a
    [num_pages, 2, ...] cache) but each page must be contiguous. The arrays
    are NumPy arrays or torch-like tensors (data_ptr, element_size, stride,
    shape, device; CPU or one CUDA device), checked once here; they stay
    referenced by this object and by every pending operation that uses it.
    """

    def __init__(self, arrays, block_indices=None):
        arrays = list(arrays)
        if not arrays:
            raise ValueError("Layers needs at least one array")
        np = _np()
        bases, strides, pages, page_bytes = [], [], [], None
        kinds, readonly = set(), False
        for i, a in enumerate(arrays):
            addr, shape, st, itemsize, ro, kind, device = _describe(a, i)
            if len(shape) < 1:
                raise ValueError(f"layer array {i}: a 0-d array; expected [num_pages, ...]")
            nbytes = itemsize * math.prod(shape[1:])
            if page_bytes is None:
                page_bytes = nbytes
            elif nbytes != page_bytes:
                raise ValueError(f"layer array {i}: a page is {nbytes} bytes (shape "
                                 f"{shape[1:]} of {itemsize}-byte items), array 0's is "
                                 f"{page_bytes}")
            if not _page_contiguous(shape[1:], st[1:], itemsize):
                raise ValueError(f"layer array {i}: a page (shape {shape[1:]}, byte strides "
                                 f"{st[1:]}) is not contiguous; each page must be one run "
                                 "of memory")
            if shape[0] > 1 and abs(st[0]) < nbytes:
                raise ValueError(f"layer array {i}: pages overlap (page stride {st[0]} bytes, "
                                 f"page {nbytes} bytes)")
            if page_bytes == nbytes and not bases:
                self._page = f"shape {shape[1:]} of {itemsize}-byte items"
            bases.append(addr)
            strides.append(st[0])
            pages.append(shape[0])
            kinds.add((kind, device))
            readonly = readonly or ro
        if len(kinds) > 1:
            raise ValueError("all layer arrays must be host memory or all on one CUDA device; "
                             f"got {sorted(kinds)}")
        self.arrays = arrays
        self.frags = len(arrays)
        self.page_bytes = page_bytes
        #: pages every array has (block indices must be below it)
        self.num_pages = min(pages)
        self.mem_kind, self.device = kinds.pop()
        self.readonly = readonly
        self._bases = np.array(bases, np.int64)
        self._strides = np.array(strides, np.int64)
        self.block_indices = None
        if block_indices is not None:
            self.block_indices = self._indices(block_indices)

    def at(self, block_indices):
        """The same arrays with these block indices (nothing checked again
        but the indices): build one Layers at start-up, then at() per call."""
        other = object.__new__(Layers)
        other.__dict__.update(self.__dict__)
        other.block_indices = self._indices(block_indices)
        return other

    def _indices(self, block_indices):
        np = _np()
        idx = np.asarray(block_indices)
        if idx.ndim != 1:
            raise ValueError(f"block_indices: expected one index per key (1-d), got shape "
                             f"{idx.shape}")
        if idx.size == 0:
            return idx.astype(np.int64)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"block_indices: expected integers, got {idx.dtype}")
        bad = np.flatnonzero((idx < 0) | (idx >= self.num_pages))
        if bad.size:
            j = int(bad[0])
            raise IndexError(f"block_indices[{j}] = {int(idx[j])} is out of range: the layer "
                             f"arrays have {self.num_pages} pages")
        return idx.astype(np.int64, copy=False)

    def pointers(self, n, frags, block_bytes, writable, frag_range=(0, 0)):
        """(pointer table, mem_kind, device): an int64 NumPy array of n * frags
        addresses, block-major (ptrs[i * frags + f] = fragment f of block i).
        frag_range (first, count), count > 0: only those arrays' pages, n *
        count addresses (a layer-wise get; (0, 0) is every fragment)."""
        if self.block_indices is None:
            raise ValueError("Layers without block indices: use layers.at(block_indices)")
        if len(self.block_indices) != n:
            raise ValueError(f"{len(self.block_indices)} block indices for {n} keys")
        if self.frags != frags:
            raise ValueError(f"{self.frags} layer arrays, the store has {frags} fragments "
                             "per block")
        if self.page_bytes * frags != block_bytes:
            raise ValueError(f"a page is {self.page_bytes} bytes ({self._page}), the store's "
                             f"fragments are "
                             f"{block_bytes // frags} bytes (block_bytes {block_bytes} / "
                             f"frags {frags})")
        if writable and self.readonly:
            raise TypeError("a layer array is read-only; get needs writable memory")
        first, count = frag_range
        cols = slice(first, first + count) if count else slice(None)
        table = self.block_indices[:, None] * self._strides[None, cols]
        table += self._bases[None, cols]
        return table.reshape(-1), self.mem_kind, self.device

    def __repr__(self):
        return (f"<kvtier.Layers {self.frags} arrays of {self.num_pages} pages of "
                f"{self.page_bytes} bytes"
                + ("" if self.block_indices is None else f", {len(self.block_indices)} blocks")
                + ">")

