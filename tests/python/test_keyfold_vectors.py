#!/usr/bin/python3
"""test_keyfold_vectors.py — folding engine keys (docs/key-spec.md, "Folding engine keys"): an independent computation against the doc's vectors, kvt_key_fold and the engine helpers.

Keys are recomputed here with python3-xxhash from the spec's text, sharing no
code with the library. Run by `meson test` (suites unit, python); by hand:
    PYTHONPATH=python /usr/bin/python3 -m pytest tests/python/test_keyfold_vectors.py
"""
import json
import os
import random
import re
from pathlib import Path

import pytest
import xxhash

import kvtier
from kvtier.integrations import keyfold

SOURCE_ROOT = Path(os.environ.get("KVT_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
DOC = SOURCE_ROOT / "docs" / "key-spec.md"
SECTION = "\n## Folding engine keys"


def canonical_xxh3_128(data):
    return xxhash.xxh3_128_intdigest(data, seed=0).to_bytes(16, "big")


def ns_key(fields):
    buf = bytearray(b"kvtier-ns-v1")
    for tag, value in fields:
        buf += bytes([tag]) + len(value).to_bytes(4, "little") + value
    return canonical_xxh3_128(bytes(buf))


def fold(ns, data):
    return canonical_xxh3_128(b"kvtier-fold-v1" + ns + data)


def doc_vectors():
    text = DOC.read_text(encoding="utf-8")
    assert SECTION in text, "docs/key-spec.md has a 'Folding engine keys' section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    vectors = [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", section, re.S)]
    return section, vectors


SECTION_TEXT, VECTORS = doc_vectors()


def test_enough_vectors_covering_each_engine():
    assert len(VECTORS) >= 6
    assert len({v["name"] for v in VECTORS}) == len(VECTORS)
    engines = {e for v in VECTORS if v["engine"] for e in v["engine"]}
    assert engines == {"vllm", "sglang", "lmcache"}
    assert any(v["bytes"] == "" and not v["ns"] for v in VECTORS)


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_vector_independently(v):
    fields = [(t, s.encode("utf-8")) for t, s in v["ns"]]
    ns = ns_key(fields)
    assert ns.hex() == v["ns_key"]
    assert fold(ns, bytes.fromhex(v["bytes"])).hex() == v["key"]


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_vector_library(v):
    ns = bytes.fromhex(v["ns_key"])
    assert kvtier.ns_key([(t, s) for t, s in v["ns"]]) == ns
    assert keyfold.fold(ns, bytes.fromhex(v["bytes"])).hex() == v["key"]


@pytest.mark.parametrize("v", [v for v in VECTORS if v["engine"]], ids=lambda v: v["name"])
def test_engine_helpers(v):
    (engine, a), = v["engine"].items()
    if engine == "vllm":
        ns = keyfold.vllm_namespace(a["model"], tp_rank=a["tp_rank"], tp_size=a["tp_size"])
        data = keyfold.vllm_bytes(bytes.fromhex(a["block_hash"]), a["group"])
        assert keyfold.vllm_keys(ns, [bytes.fromhex(a["block_hash"])], a["group"])[0].hex() \
            == v["key"]
    elif engine == "sglang":
        extra = {k: a[k] for k in ("pp_rank", "pp_size", "is_mla_model") if k in a}
        ns = keyfold.sglang_namespace(a["model_name"], tp_rank=a["tp_rank"],
                                      tp_size=a["tp_size"], **extra)
        data = keyfold.sglang_bytes(a["key"], a.get("pool"))
        assert keyfold.sglang_keys(ns, [a["key"]], a.get("pool"))[0].hex() == v["key"]
    else:
        class Key:  # a CacheEngineKey as LMCache v0.3 has it
            pass
        key = Key()
        for k, val in a.items():
            setattr(key, k, val)
        ns = keyfold.lmcache_key_namespace(key)
        data = keyfold.lmcache_bytes(a["chunk_hash"])
        assert keyfold.lmcache_key(key).hex() == v["key"]
    assert [(t, val.decode()) for t, val in ns.fields] == [tuple(f) for f in v["ns"]]
    assert data.hex() == v["bytes"]


def test_fold_many_matches_fold_random():
    seed = int(os.environ.get("KVT_SEED", random.randrange(2**32)))
    print(f"seed {seed}")
    rng = random.Random(seed)
    for _ in range(50):
        ns = bytes(rng.randrange(256) for _ in range(16))
        width = rng.choice([0, 1, 7, 32, 36, 64, 100])
        items = [bytes(rng.randrange(256) for _ in range(width))
                 for _ in range(rng.randrange(1, 9))]
        want = [fold(ns, i) for i in items]
        assert list(keyfold.fold_many(ns, items)) == want, f"seed {seed}"
        mixed = items + [b"x" * (width + 1)]
        assert list(keyfold.fold_many(ns, mixed)) == want + [fold(ns, mixed[-1])], f"seed {seed}"


def test_separated_from_chains_and_namespaces():
    # The same 16 + 4 bytes as a chained block's input give another key.
    ns = kvtier.ns_key([])
    tokens = [1]
    chained = kvtier.keys(tokens, ns, 1)[0]
    assert keyfold.fold(ns, (1).to_bytes(4, "little")) != chained


def test_errors():
    out = bytes(16)
    with pytest.raises(kvtier.ENULL):
        kvtier.errors.check(kvtier._lib.lib.kvt_key_fold(None, b"", 0, out))
    with pytest.raises(kvtier.ENULL):
        kvtier.errors.check(kvtier._lib.lib.kvt_key_fold(bytes(16), None, 3, out))
    with pytest.raises(ValueError):
        keyfold.fold(b"short", b"x")
    assert len(keyfold.fold_many(bytes(16), [])) == 0


def test_every_hex_key_in_the_section_is_a_vector_key():
    known = {v["key"] for v in VECTORS} | {v["ns_key"] for v in VECTORS}
    for h in re.findall(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])", SECTION_TEXT):
        assert h in known, h
