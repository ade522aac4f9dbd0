#!/usr/bin/python3
"""test_key_vectors.py — an independent key spec v1 implementation checks docs/key-spec.md, hash_prompt and test_keys.c.

Shares no code with the library: keys are recomputed here with python3-xxhash
from the spec's text. Run by `meson test` (suite unit); by hand:
    KVT_BUILD_ROOT=build /usr/bin/python3 tests/python/test_key_vectors.py [--seed N] [--cases N]
Exits non-zero on any failure; random cases print their seed.
"""
import argparse
import json
import os
import random
import re
import struct
import subprocess
import sys
from pathlib import Path

import xxhash

SOURCE_ROOT = Path(os.environ.get("KVT_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
BUILD_ROOT = Path(os.environ.get("KVT_BUILD_ROOT", SOURCE_ROOT / "build"))
HASH_PROMPT = BUILD_ROOT / "examples" / "hash_prompt"
DOC = SOURCE_ROOT / "docs" / "key-spec.md"
C_TEST = SOURCE_ROOT / "tests" / "unit" / "test_keys.c"

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)
    return cond


# ---------------------------------------------------------------- the spec, independently

def ns_key(fields):
    buf = bytearray(b"kvtier-ns-v1")
    for tag, value in fields:
        assert 0 <= tag <= 255
        buf += bytes([tag]) + len(value).to_bytes(4, "little") + value
    return canonical_xxh3_128(bytes(buf))


def key_chain(parent, tokens, block_tokens):
    keys = []
    for i in range(len(tokens) // block_tokens):
        block = tokens[i * block_tokens:(i + 1) * block_tokens]
        data = parent + b"".join(t.to_bytes(4, "little") for t in block)
        parent = canonical_xxh3_128(data)
        keys.append(parent)
    return keys


def canonical_xxh3_128(data):
    # Built from the integer value (high64 << 64 | low64), so the byte order
    # is the spec's, not whatever the digest() convention happens to be.
    return xxhash.xxh3_128_intdigest(data, seed=0).to_bytes(16, "big")


# ---------------------------------------------------------------- helpers

def hash_prompt_args(fields, block_tokens, tokens):
    args = [str(HASH_PROMPT).encode(), b"--block-tokens", str(block_tokens).encode()]
    for tag, value in fields:
        args += [b"--ns", str(tag).encode() + b":" + value]
    return args + [b"--"] + [str(t).encode() for t in tokens]


def run_hash_prompt(fields, block_tokens, tokens):
    p = subprocess.run(hash_prompt_args(fields, block_tokens, tokens), capture_output=True)
    if p.returncode != 0:
        return None, p
    return p.stdout.decode().split(), p


def load_doc_vectors():
    """Every ```json block after '## Test vectors': one vector object or a list of them."""
    # The keyed mode's section (last on the page) has its own vectors, checked
    # by test_keymode_vectors.py; everything here is about version 1.
    text = DOC.read_text(encoding="utf-8").split("\n## Collision-resistant mode", 1)[0]
    section = text.split("## Test vectors", 1)
    if not check(len(section) == 2, "docs/key-spec.md has a '## Test vectors' section"):
        return text, []
    vectors = []
    for block in re.findall(r"```json\n(.*?)\n```", section[1], re.S):
        data = json.loads(block)
        vectors += data if isinstance(data, list) else [data]
    check(len({v["name"] for v in vectors}) == len(vectors), "vector names are unique")
    return text, vectors


def fields_of(vector):
    return [(tag, value.encode("utf-8")) for tag, value in vector["ns"]]


# ---------------------------------------------------------------- checks

def check_hash_conventions():
    # Published XXH3-128 of the empty input, high64 then low64.
    check(canonical_xxh3_128(b"").hex() == "99aa06d3014798d86001c324468d497f",
          "XXH3-128('') canonical bytes")
    for data in (b"", b"abc", b"kvtier-ns-v1", bytes(range(256)) * 3):
        check(xxhash.xxh3_128_digest(data) == canonical_xxh3_128(data),
              f"xxhash.xxh3_128_digest is canonical big-endian ({len(data)} bytes)")
    check(ns_key([]).hex() == "24112c5efcc67e4dce6b8da10fa379a2", "empty namespace key")


def check_vectors(doc_text, vectors):
    check(len(vectors) >= 6, f"at least 6 documented vectors (found {len(vectors)})")
    c_text = C_TEST.read_text(encoding="utf-8")
    for v in vectors:
        name, fields, B, tokens = v["name"], fields_of(v), v["block_tokens"], v["tokens"]
        check(all(0 <= t < 2**32 for t in tokens), f"{name}: tokens are u32")
        ns = ns_key(fields)
        check(ns.hex() == v["ns_key"], f"{name}: python ns_key {ns.hex()} != doc {v['ns_key']}")
        keys = [k.hex() for k in key_chain(ns, tokens, B)]
        check(len(v["keys"]) == len(tokens) // B, f"{name}: doc lists one key per full block")
        check(keys == v["keys"], f"{name}: python keys {keys} != doc {v['keys']}")
        out, p = run_hash_prompt(fields, B, tokens)
        check(out == v["keys"], f"{name}: hash_prompt {out} (rc {p.returncode}, "
              f"{p.stderr.decode().strip()[:200]}) != doc {v['keys']}")
        for h in [v["ns_key"]] + v["keys"]:
            check(h in c_text, f"{name}: {h} is not in tests/unit/test_keys.c")

    # What the vectors must cover (the brief of docs/key-spec.md).
    by = {v["name"]: v for v in vectors}
    check(any(not v["ns"] for v in vectors), "a vector with an empty namespace")
    check(any(any(val == "" for _, val in v["ns"]) for v in vectors), "a field with an empty value")
    check(any({t for t, _ in v["ns"]} >= {1, 2, 3} for v in vectors), "model+layout+rank")
    sizes = {v["block_tokens"] for v in vectors}
    check(1 in sizes and 16 in sizes and max(sizes) > 16, f"block sizes 1, 16, larger ({sizes})")
    check(any(len(v["tokens"]) % v["block_tokens"] and v["keys"] for v in vectors),
          "a partial last block after full ones")
    check(any(t >= 2**31 for v in vectors for t in v["tokens"]), "a token >= 2^31")
    # Two vectors that differ only in the value of a salt field (tag 5).
    salted = [(a, b) for a in vectors for b in vectors
              if a["name"] < b["name"] and a["tokens"] == b["tokens"]
              and a["block_tokens"] == b["block_tokens"] and len(a["ns"]) == len(b["ns"])
              and [i for i, (fa, fb) in enumerate(zip(a["ns"], b["ns"])) if fa != fb]
              == [i for i, f in enumerate(a["ns"]) if f[0] == 5 and b["ns"][i][0] == 5]
              and any(f[0] == 5 for f in a["ns"])]
    if check(salted, "two vectors that differ only in the salt"):
        for a, b in salted:
            check(a["keys"] and all(x != y for x, y in zip(a["keys"], b["keys"])),
                  f"{a['name']} / {b['name']}: different salts give different keys")

    # The doc's own reference implementation must reproduce its own vectors.
    m = re.search(r"## Reference implementation.*?```python\n(.*?)\n```", doc_text, re.S)
    if check(m is not None, "the doc has a ```python reference implementation"):
        scope = {}
        exec(compile(m.group(1), "docs/key-spec.md", "exec"), scope)
        for v in vectors:
            keys = scope["key_chain"](scope["ns_key"](fields_of(v)), v["tokens"], v["block_tokens"])
            check([k.hex() for k in keys] == v["keys"], f"{v['name']}: doc's python snippet")

    # Worked examples: every hex dump in the doc (a fenced block of lines that
    # start with hex bytes) must hash to a key the doc names right after it,
    # and every 32-digit hex string in the doc must be one we can account for.
    known = {canonical_xxh3_128(b"").hex(), canonical_xxh3_128(b"abc").hex()}
    for v in vectors:
        known |= {v["ns_key"], *v["keys"]}
    dumps = 0
    for m in re.finditer(r"```\n(.*?)\n```", doc_text, re.S):
        lines = m.group(1).splitlines()
        if not lines or not all(re.match(r"[0-9a-f]{2}( |$)", ln) for ln in lines):
            continue
        data = bytearray()
        for ln in lines:
            for word in ln.split():
                if not re.fullmatch(r"[0-9a-f]{2}", word):
                    break
                data.append(int(word, 16))
        digest = canonical_xxh3_128(bytes(data)).hex()
        after = doc_text[m.end():m.end() + 400]
        check(digest in after, f"hex dump at offset {m.start()} hashes to {digest}, "
              "which the text after it does not name")
        known.add(digest)
        dumps += 1
    check(dumps >= 1, "the doc has a byte-by-byte example")
    for h in set(re.findall(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])", doc_text)):
        check(h in known, f"docs/key-spec.md names {h}, which is no vector key, ns key or example")


def random_value(rng):
    n = rng.choice([0, 0, 1, 2, 5, 16, 40])
    # Any byte but NUL fits in argv; ':' often, since only the first one splits.
    return bytes(58 if rng.random() < 0.15 else rng.randrange(1, 256) for _ in range(n))


def random_token(rng):
    return rng.choice([0, 1, 2**31 - 1, 2**31, 2**32 - 1, rng.randrange(2**32),
                       rng.randrange(200000)])


def check_random(seed, cases):
    rng = random.Random(seed)
    print(f"random cases: seed {seed}, {cases} cases", flush=True)
    bad = 0
    for case in range(cases):
        fields = [(rng.randrange(256), random_value(rng)) for _ in range(rng.randrange(6))]
        B = rng.choice([1, 2, 3, 4, 7, 16, 32, 64, 100, 256, rng.randrange(1, 600)])
        n = rng.randrange(0, 6 * B + 2) if B <= 64 else rng.randrange(0, 3 * B + 2)
        tokens = [random_token(rng) for _ in range(n)]
        expect = [k.hex() for k in key_chain(ns_key(fields), tokens, B)]
        out, p = run_hash_prompt(fields, B, tokens)
        if out != expect:
            bad += 1
            check(False, f"random case {case} (seed {seed}): fields={fields!r} B={B} "
                  f"ntokens={n}: hash_prompt {out} rc {p.returncode} != python {expect}")
            if bad >= 5:
                break


def check_bad_args():
    cases = [
        [],
        ["1", "2"],                                  # missing --block-tokens
        ["--block-tokens"],                          # missing value
        ["--block-tokens", "0", "1"],
        ["--block-tokens", "-1", "1"],
        ["--block-tokens", "4294967296", "1"],
        ["--block-tokens", "x", "1"],
        ["--block-tokens", "2", "x"],                # non-numeric token
        ["--block-tokens", "2", "1", "-1"],
        ["--block-tokens", "2", "--", "-1"],
        ["--block-tokens", "2", "+1"],
        ["--block-tokens", "2", "1.5"],
        ["--block-tokens", "2", "4294967296"],
        ["--block-tokens", "2", ""],
        ["--block-tokens", "2", "--ns", "256:x", "1", "2"],
        ["--block-tokens", "2", "--ns", "-1:x", "1", "2"],
        ["--block-tokens", "2", "--ns", "m:x", "1", "2"],
        ["--block-tokens", "2", "--ns", ":x", "1", "2"],
        ["--block-tokens", "2", "--ns", "1", "1", "2"],   # no ':'
        ["--block-tokens", "2", "--ns"],
        ["--block-tokens", "2", "--frobnicate", "1"],
    ]
    for args in cases:
        p = subprocess.run([str(HASH_PROMPT)] + args, capture_output=True)
        check(p.returncode == 2 and b"usage" in p.stderr and p.stdout == b"",
              f"hash_prompt {args}: rc {p.returncode} (want 2, usage on stderr, nothing on stdout)")
    p = subprocess.run([str(HASH_PROMPT), "--help"], capture_output=True)
    check(p.returncode == 0 and b"usage" in p.stdout, "hash_prompt --help")
    # Edge cases that are valid: tag 0 and 255, 4294967295 as a token, no tokens.
    out, p = run_hash_prompt([(0, b""), (255, b"::")], 1, [2**32 - 1])
    check(out == [k.hex() for k in key_chain(ns_key([(0, b""), (255, b"::")]), [2**32 - 1], 1)],
          "tags 0 and 255, value '::', token 2^32-1")
    out, p = run_hash_prompt([], 16, [])
    check(out == [] and p.returncode == 0, "no tokens: no keys, exit 0")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--cases", type=int, default=200)
    opts = ap.parse_args()
    seed = opts.seed if opts.seed is not None else int(os.environ.get("KVT_SEED", random.randrange(2**32)))

    if not HASH_PROMPT.exists():
        print(f"FAIL: {HASH_PROMPT} not built (set KVT_BUILD_ROOT)")
        return 1
    check_hash_conventions()
    doc_text, vectors = load_doc_vectors()
    check_vectors(doc_text, vectors)
    check_bad_args()
    check_random(seed, opts.cases)
    if failures:
        print(f"{len(failures)} failure(s); random seed {seed} (rerun with --seed {seed})")
        return 1
    print(f"ok: {len(vectors)} documented vectors, {opts.cases} random cases (seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
