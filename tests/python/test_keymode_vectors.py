#!/usr/bin/python3
"""test_keymode_vectors.py — the keyed blake2b-128 key mode: an independent hashlib implementation checks docs/key-spec.md, hash_prompt, the binding and test_keymode.c.

Shares no code with the library: keys are recomputed here with
hashlib.blake2b(digest_size=16, key=secret) from the spec's text. Run by
`meson test` (suite unit); by hand:
    KVT_BUILD_ROOT=build KVTIER_LIBRARY=build/lib/libkvtier.so \\
        /usr/bin/python3 tests/python/test_keymode_vectors.py [--seed N] [--cases N]
Exits 0 when all pass, 77 (meson: skipped) when the library was built
without libb2, 1 on any failure; random cases print their seed.
"""
import argparse
import hashlib
import json
import os
import random
import re
import struct
import subprocess
import sys
from pathlib import Path

SOURCE_ROOT = Path(os.environ.get("KVT_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
BUILD_ROOT = Path(os.environ.get("KVT_BUILD_ROOT", SOURCE_ROOT / "build"))
HASH_PROMPT = BUILD_ROOT / "examples" / "hash_prompt"
DOC = SOURCE_ROOT / "docs" / "key-spec.md"
C_TEST = SOURCE_ROOT / "tests" / "unit" / "test_keymode.c"
SECTION = "\n## Collision-resistant mode"
MAGIC = b"kvtier-ns-blake2b-v1"

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)
    return cond


# ---------------------------------------------------------------- the spec, independently

def mac(secret, data):
    # BLAKE2b's own keyed mode with the digest length in the parameter block:
    # not a truncated 64-byte digest, not the secret prepended to the data.
    return hashlib.blake2b(data, digest_size=16, key=secret).digest()


def ns_key(secret, fields):
    buf = bytearray(MAGIC)
    for tag, value in fields:
        assert 0 <= tag <= 255
        buf += bytes([tag]) + len(value).to_bytes(4, "little") + value
    return mac(secret, bytes(buf))


def key_chain(secret, parent, tokens, block_tokens):
    keys = []
    for i in range(len(tokens) // block_tokens):
        block = tokens[i * block_tokens:(i + 1) * block_tokens]
        parent = mac(secret, parent + b"".join(t.to_bytes(4, "little") for t in block))
        keys.append(parent)
    return keys


# ---------------------------------------------------------------- helpers

def run_hash_prompt(secret, fields, block_tokens, tokens, mode="blake2b-128"):
    args = [str(HASH_PROMPT).encode(), b"--mode", mode.encode(), b"--block-tokens",
            str(block_tokens).encode()]
    if secret is not None:
        args += [b"--secret", secret.hex().encode()]
    for tag, value in fields:
        args += [b"--ns", str(tag).encode() + b":" + value]
    p = subprocess.run(args + [b"--"] + [str(t).encode() for t in tokens], capture_output=True)
    return (p.stdout.decode().split() if p.returncode == 0 else None), p


def doc_section():
    text = DOC.read_text(encoding="utf-8")
    parts = text.split(SECTION, 1)
    if not check(len(parts) == 2, "docs/key-spec.md has a '## Collision-resistant mode' section"):
        return text, ""
    # The folding section after it has its own test (test_keyfold_vectors.py).
    return parts[0], SECTION + parts[1].split("\n## Folding engine keys", 1)[0]


def fenced_blocks(text):
    """[(info string, body, offset just after the closing fence)] of the
    ``` blocks, paired in order (a closing fence never opens the next)."""
    blocks, info, start, pos = [], None, 0, 0
    for line in text.splitlines(keepends=True):
        pos += len(line)
        if not line.startswith("```"):
            continue
        if info is None:
            info, start = line[3:].strip(), pos
        else:
            blocks.append((info, text[start:pos - len(line)].rstrip("\n"), pos))
            info = None
    return blocks


def load_vectors(section):
    vectors = []
    for block in [body for info, body, _ in fenced_blocks(section) if info == "json"]:
        data = json.loads(block)
        vectors += data if isinstance(data, list) else [data]
    check(len({v["name"] for v in vectors}) == len(vectors), "vector names are unique")
    return vectors


def fields_of(v):
    return [(tag, value.encode("utf-8")) for tag, value in v["ns"]]


def v1_vectors(v1_text):
    vectors = []
    for block in re.findall(r"```json\n(.*?)\n```", v1_text.split("## Test vectors", 1)[-1], re.S):
        data = json.loads(block)
        vectors += data if isinstance(data, list) else [data]
    return vectors


# ---------------------------------------------------------------- checks

def check_hashlib_conventions():
    # RFC 7693 appendix A: BLAKE2b-512("abc"); then keyed, shortened digests
    # differ from truncations, so the digest length really is a parameter.
    check(hashlib.blake2b(b"abc").hexdigest().startswith("ba80a53f981c4d0d6a2797b69f12f6e9"),
          "hashlib.blake2b is RFC 7693 BLAKE2b")
    k = bytes(range(16))
    check(mac(k, b"x") != hashlib.blake2b(b"x", key=k).digest()[:16],
          "digest_size=16 is not a truncated 64-byte digest")
    check(mac(k, b"x") != hashlib.blake2b(k + b"x", digest_size=16).digest(),
          "the key is not a prefix of the message")


def check_vectors(vectors, v1):
    check(len(vectors) >= 5, f"at least 5 documented blake2b-128 vectors (found {len(vectors)})")
    # Adjacent C string literals ("ab" "cd", across lines) are one string.
    c_text = re.sub(r'"\s*(\\\s*)?"', "", C_TEST.read_text(encoding="utf-8"))
    binding = load_binding()
    for v in vectors:
        name, B, tokens = v["name"], v["block_tokens"], v["tokens"]
        check(v.get("mode") == "blake2b-128", f"{name}: mode is blake2b-128")
        secret = bytes.fromhex(v["secret"])
        check(16 <= len(secret) <= 64, f"{name}: secret of 16..64 bytes ({len(secret)})")
        fields = fields_of(v)
        ns = ns_key(secret, fields)
        check(ns.hex() == v["ns_key"], f"{name}: python ns_key {ns.hex()} != doc {v['ns_key']}")
        keys = [k.hex() for k in key_chain(secret, ns, tokens, B)]
        check(len(v["keys"]) == len(tokens) // B, f"{name}: doc lists one key per full block")
        check(keys == v["keys"], f"{name}: python keys {keys} != doc {v['keys']}")
        out, p = run_hash_prompt(secret, fields, B, tokens)
        check(out == v["keys"], f"{name}: hash_prompt {out} (rc {p.returncode}, "
              f"{p.stderr.decode().strip()[:200]}) != doc {v['keys']}")
        if binding:
            bns = binding.Namespace(fields=fields, mode="blake2b-128", secret=secret)
            check(bns.key.hex() == v["ns_key"], f"{name}: binding ns_key {bns.key.hex()}")
            check(binding.keys(tokens, bns, B).hex() == v["keys"], f"{name}: binding keys")
        for h in [v["secret"], v["ns_key"]] + v["keys"]:
            check(h in c_text, f"{name}: {h} is not in tests/unit/test_keymode.c")

    # What the vectors must cover.
    check(any(not v["ns"] for v in vectors), "a vector with an empty namespace")
    check(any(any(val == "" for _, val in v["ns"]) for v in vectors), "a field with an empty value")
    lens = {len(bytes.fromhex(v["secret"])) for v in vectors}
    check({16, 64} <= lens, f"secrets of the shortest and longest lengths ({sorted(lens)})")
    check(any(16 + 4 * v["block_tokens"] > 128 and v["keys"] for v in vectors),
          "a block whose hash input spans several BLAKE2b blocks")
    check(any(len(v["tokens"]) % v["block_tokens"] and v["keys"] for v in vectors),
          "a partial last block after full ones")
    check(any(t >= 2**31 for v in vectors for t in v["tokens"]), "a token >= 2^31")
    same = lambda a, b, key: a[key] == b[key]  # noqa: E731
    pairs = [(a, b) for a in vectors for b in vectors if a["name"] < b["name"]
             and same(a, b, "tokens") and same(a, b, "block_tokens")]
    check(any(same(a, b, "secret") and a["ns"] != b["ns"] for a, b in pairs),
          "two vectors that differ only in the namespace (salt)")
    check(any(same(a, b, "ns") and a["secret"] != b["secret"] for a, b in pairs),
          "two vectors that differ only in the secret")
    for a, b in pairs:
        check(not set(a["keys"]) & set(b["keys"]), f"{a['name']} / {b['name']} share a key")

    # Never equal to a version 1 key: the same namespace and tokens in xxh3-128.
    v1_keys = {k for w in v1 for k in [w["ns_key"]] + w["keys"]}
    for v in vectors:
        check(not ({v["ns_key"]} | set(v["keys"])) & v1_keys, f"{v['name']} shares a v1 key")
    twins = [(v, w) for v in vectors for w in v1 if v["ns"] == w["ns"]
             and v["tokens"] == w["tokens"] and v["block_tokens"] == w["block_tokens"]]
    check(len(twins) >= 3, f"at least 3 vectors with a version 1 twin (found {len(twins)})")


def check_section_text(section, vectors, v1):
    # The section's own reference implementation reproduces its vectors.
    ref = section.split("### Reference implementation", 1)[-1]
    code = [body for info, body, _ in fenced_blocks(ref) if info == "python"][:1]
    if check("### Reference implementation" in section and code,
             "the section has a ```python reference implementation"):
        scope = {}
        exec(compile(code[0], "docs/key-spec.md", "exec"), scope)
        for v in vectors:
            secret = bytes.fromhex(v["secret"])
            ns = scope["ns_key_b2"](secret, fields_of(v))
            keys = scope["key_chain_b2"](secret, ns, v["tokens"], v["block_tokens"])
            check(ns.hex() == v["ns_key"] and [k.hex() for k in keys] == v["keys"],
                  f"{v['name']}: the doc's python snippet")
    check('"kvtier-ns-blake2b-v1"' in section, "the section names the magic string")

    # Every hex dump hashes, under some vector's secret, to a key named right
    # after it; every 32-digit hex string is a key, a secret or a v1 key.
    secrets = {bytes.fromhex(v["secret"]) for v in vectors}
    known = {v["secret"] for v in vectors}
    for v in vectors + v1:
        known |= {v["ns_key"], *v["keys"]}
    dumps = 0
    for info, body, end in fenced_blocks(section):
        lines = body.splitlines()
        if not lines or not all(re.match(r"[0-9a-f]{2}( |$)", ln) for ln in lines):
            continue
        data = bytearray()
        for ln in lines:
            for word in ln.split():
                if not re.fullmatch(r"[0-9a-f]{2}", word):
                    break
                data.append(int(word, 16))
        after = section[end:end + 400]
        digests = {mac(s, bytes(data)).hex() for s in secrets}
        check(not info and any(d in after for d in digests),
              f"hex dump before offset {end} hashes to none of the keys named after it")
        known |= digests
        dumps += 1
    check(dumps >= 1, "the section has a byte-by-byte example")
    for h in set(re.findall(r"(?<![0-9a-f])[0-9a-f]{32,128}(?![0-9a-f])", section)):
        check(h in known, f"the section names {h}, which is no vector key, secret or example")


def random_value(rng):
    n = rng.choice([0, 0, 1, 2, 5, 16, 40])
    return bytes(58 if rng.random() < 0.15 else rng.randrange(1, 256) for _ in range(n))


def random_token(rng):
    return rng.choice([0, 1, 2**31 - 1, 2**31, 2**32 - 1, rng.randrange(2**32),
                       rng.randrange(200000)])


def check_random(seed, cases):
    rng = random.Random(seed)
    print(f"random cases: seed {seed}, {cases} cases", flush=True)
    binding = load_binding()
    bad = 0
    for case in range(cases):
        secret = rng.randbytes(rng.choice([16, 17, 32, 63, 64]))
        fields = [(rng.randrange(256), random_value(rng)) for _ in range(rng.randrange(5))]
        B = rng.choice([1, 2, 3, 7, 16, 28, 29, 32, 64, 100, rng.randrange(1, 300)])
        tokens = [random_token(rng) for _ in range(rng.randrange(0, 5 * B + 2))]
        ns = ns_key(secret, fields)
        expect = [k.hex() for k in key_chain(secret, ns, tokens, B)]
        out, p = run_hash_prompt(secret, fields, B, tokens)
        got_b = None
        if binding:
            got_b = binding.keys(tokens, binding.Namespace(fields=fields, mode="blake2b-128",
                                                           secret=secret), B).hex()
        if out != expect or (binding and got_b != expect):
            bad += 1
            check(False, f"random case {case} (seed {seed}): secret={secret.hex()} "
                  f"fields={fields!r} B={B} ntokens={len(tokens)}: hash_prompt {out} "
                  f"rc {p.returncode}, binding {got_b} != python {expect}")
            if bad >= 5:
                break
        # The same input in xxh3-128 shares no key with it.
        x, _ = run_hash_prompt(None, fields, B, tokens, mode="xxh3-128") if case % 10 == 0 \
            else (None, None)
        if x is not None:
            check(not set(x) & set(expect), f"random case {case}: xxh3-128 and blake2b-128 agree")


def check_secrets_and_modes():
    fields = [(1, b"m"), (5, b"tenant")]
    tokens = list(range(64))
    base = bytes(range(100, 164))
    variants = {"16": base[:16], "17": base[:17], "64": base,
                "flip": base[:63] + bytes([base[63] ^ 1]), "zero-padded": base[:16] + b"\0"}
    seen = {}
    for name, s in variants.items():
        out, p = run_hash_prompt(s, fields, 16, tokens)
        if check(out is not None, f"hash_prompt with secret {name}: rc {p.returncode}"):
            check(out == [k.hex() for k in key_chain(s, ns_key(s, fields), tokens, 16)],
                  f"secret {name}: hash_prompt agrees with python")
            for other, keys in seen.items():
                check(not set(out) & set(keys), f"secrets {name} and {other} share a key")
            seen[name] = out
    # Refusals: the library's (exit 1), the command line's (exit 2).
    for secret_hex, mode, rc, what in [
            ("00" * 15, "blake2b-128", 1, "a 15-byte secret"),
            ("00" * 65, "blake2b-128", 1, "a 65-byte secret"),
            (None, "blake2b-128", 1, "no secret"),
            ("00" * 16, "xxh3-128", 1, "a secret with xxh3-128"),
            ("0g" * 16, "blake2b-128", 2, "a secret that is not hex"),
            ("0" * 33, "blake2b-128", 2, "an odd number of hex digits"),
            ("00" * 16, "blake2b-256", 2, "an unknown mode")]:
        args = [str(HASH_PROMPT), "--mode", mode, "--block-tokens", "2"]
        if secret_hex is not None:
            args += ["--secret", secret_hex]
        p = subprocess.run(args + ["1", "2"], capture_output=True)
        check(p.returncode == rc and p.stdout == b"" and p.stderr,
              f"hash_prompt with {what}: rc {p.returncode} (want {rc}), "
              f"stderr {p.stderr.decode().strip()[:120]!r}")
        if rc == 2:
            check(b"usage" in p.stderr, f"hash_prompt with {what} prints the usage")


_binding = []


def load_binding():
    """The kvtier module, or None (reported once) when it does not load."""
    if not _binding:
        try:
            sys.path.insert(0, str(SOURCE_ROOT / "python"))
            import kvtier
            _binding.append(kvtier)
        except ImportError as e:
            check(False, f"python binding does not load: {e}")
            _binding.append(None)
    return _binding[0]


def check_binding():
    kvtier = load_binding()
    if not kvtier:
        return
    secret = bytes(range(32))
    ns = kvtier.Namespace(model="m", salt="a", mode="blake2b-128", secret=secret)
    check(ns.mode == kvtier.KEY_BLAKE2B_128, "Namespace.mode")
    check(secret.hex() not in repr(ns) and "blake2b-128" in repr(ns), f"repr {ns!r}")
    check(ns.key == ns_key(secret, [(1, b"m"), (5, b"a")]), "binding Namespace key")
    tokens = list(range(50))
    want = key_chain(secret, ns.key, tokens, 16)
    check(list(ns.keys(tokens, 16)) == want, "Namespace.keys in the keyed mode")
    # Continuing a chain from a raw key needs the mode and secret again.
    tail = kvtier.keys(tokens[16:], want[0], 16, mode="blake2b-128", secret=secret)
    check(list(tail) == want[1:], "keys() continued from a raw parent key")
    check(list(kvtier.keys(tokens, None, 16, mode="blake2b-128", secret=secret))
          == key_chain(secret, ns_key(secret, []), tokens, 16), "keys() from the empty namespace")
    check(kvtier.ns_key([(1, b"m")], "blake2b-128", secret) == ns_key(secret, [(1, b"m")]),
          "ns_key(fields, mode, secret)")
    plain = kvtier.Namespace(model="m", salt="a")
    check(plain.mode == kvtier.KEY_XXH3_128 and plain.key != ns.key, "default mode is xxh3-128")

    def raises(exc, fn, what):
        try:
            fn()
        except exc:
            return
        except Exception as e:  # noqa: BLE001 — report the wrong kind
            check(False, f"{what}: raised {type(e).__name__}: {e}, not {exc.__name__}")
            return
        check(False, f"{what}: did not raise {exc.__name__}")

    raises(kvtier.ESIZE, lambda: kvtier.Namespace(model="m", mode="blake2b-128"), "no secret")
    raises(kvtier.ESIZE, lambda: kvtier.Namespace(model="m", mode="blake2b-128", secret=b"x" * 15),
           "15-byte secret")
    raises(kvtier.ESIZE, lambda: kvtier.Namespace(model="m", secret=b"x" * 16),
           "a secret with xxh3-128")
    raises(kvtier.EINVAL, lambda: kvtier.ns_key([], 7), "unknown mode number")
    raises(ValueError, lambda: kvtier.ns_key([], "sha-1"), "unknown mode name")
    raises(TypeError, lambda: kvtier.Namespace(mode="blake2b-128", secret="00" * 16),
           "a text secret")
    raises(ValueError, lambda: kvtier.keys(tokens, ns, 16, mode="xxh3-128"),
           "a mode beside a Namespace")

    # The store option: declared, read back as a stat, checked by the library.
    with kvtier.Store(4096, dram_bytes=8 * 4096, hugepages=0, key_mode="blake2b-128") as s:
        check(s.stat("key_mode") == kvtier.KEY_BLAKE2B_128, "Store(key_mode=...) stat")
        keys = ns.keys(tokens, 16)
        s.put(keys, bytearray(len(keys) * 4096))
        check(s.lookup(keys)[0] == len(keys), "keyed keys hit in a keyed store")
        check(s.lookup(plain.keys(tokens, 16))[0] == 0, "xxh3 keys of equal fields miss")
    with kvtier.Store(4096, dram_bytes=8 * 4096, hugepages=0) as s:
        check(s.stat("key_mode") == kvtier.KEY_XXH3_128, "default store key_mode")
    raises(kvtier.EINVAL, lambda: kvtier.Store(4096, dram_bytes=8 * 4096, key_mode=9),
           "Store(key_mode=9)")


def blake2_built():
    """Whether the library computes blake2b-128 (hash_prompt exits 1 with
    'libb2' otherwise)."""
    p = subprocess.run([str(HASH_PROMPT), "--mode", "blake2b-128", "--secret", "00" * 16,
                        "--block-tokens", "1", "1"], capture_output=True)
    if p.returncode == 1 and b"libb2" in p.stderr:
        return False
    check(p.returncode == 0, f"hash_prompt --mode blake2b-128: rc {p.returncode} "
          f"{p.stderr.decode().strip()[:200]}")
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--cases", type=int, default=100)
    opts = ap.parse_args()
    seed = opts.seed if opts.seed is not None else int(os.environ.get("KVT_SEED",
                                                                      random.randrange(2**32)))
    if not HASH_PROMPT.exists():
        print(f"FAIL: {HASH_PROMPT} not built (set KVT_BUILD_ROOT)")
        return 1
    if not blake2_built():
        if failures:
            return 1
        print("SKIP: the library was built without libb2 (blake2b-128 is KVT_ENOTSUP)")
        return 77
    check_hashlib_conventions()
    v1_text, section = doc_section()
    vectors = load_vectors(section)
    v1 = v1_vectors(v1_text)
    check_vectors(vectors, v1)
    check_section_text(section, vectors, v1)
    check_secrets_and_modes()
    check_binding()
    check_random(seed, opts.cases)
    if failures:
        print(f"{len(failures)} failure(s); random seed {seed} (rerun with --seed {seed})")
        return 1
    print(f"ok: {len(vectors)} documented blake2b-128 vectors, {opts.cases} random cases "
          f"(seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
