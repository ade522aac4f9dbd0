"""test_connect.py — kvtier.connect() against kvtierd: bytes round trip,
lookups and leases, errors with their classes, tickets, Prometheus text
parsed by prometheus_client, SIGTERM exits cleanly (docs/shared.md)."""
import os
import random
import signal
import socket
import tempfile
import urllib.request

import pytest

import kvtier
from kvtierd_proc import running_kvtierd

BUILD_ROOT = os.environ.get("KVT_BUILD_ROOT", "build")
KVTIERD = os.path.join(BUILD_ROOT, "tools", "kvtierd")
BLOCK = 16 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def daemon():
    d = tempfile.mkdtemp(prefix="kvtierd-")
    path = os.path.join(d, "kv.sock")
    port = free_port()
    args = ["--block-bytes", str(BLOCK), "--frags", "2", "--dram", str(64 * BLOCK),
            "--metrics-port", str(port)]
    with running_kvtierd(KVTIERD, path, args, tries=500) as p:
        yield p, path, port


def test_round_trip_and_lookup(daemon):
    seed = random.randrange(1 << 32)
    print("seed", seed)
    rng = random.Random(seed)
    _, path, _ = daemon
    with kvtier.connect(path) as s:
        assert s.block_bytes == BLOCK and s.frags == 2
        ks = kvtier.keys(list(range(8 * 4)), kvtier.Namespace(salt=b"py"), 4)
        data = rng.randbytes(BLOCK * len(ks))
        put = s.put(ks, data)
        assert list(put.status) == [0] * len(ks)
        out = bytearray(len(data))
        got = s.get(ks, out)
        assert list(got.status) == [0] * len(ks)
        assert bytes(out) == data
        assert s.lookup(ks)[0] == len(ks)
        assert s.contains(ks)[0] == len(ks)
        # a second client sees the first one's blocks
        with kvtier.connect(path, block_bytes=BLOCK) as other:
            out2 = bytearray(len(data))
            other.get(ks, out2)
            assert bytes(out2) == data
        assert s.remove(ks[:2]) == 2
        assert s.lookup(ks)[0] == 0
        assert s.stat("client.block_bytes") == BLOCK


def test_tickets(daemon):
    _, path, _ = daemon
    with kvtier.connect(path) as s:
        ks = kvtier.keys(list(range(4 * 4)), kvtier.Namespace(salt=b"t"), 4)
        data = os.urandom(BLOCK * len(ks))
        t = s.put(ks, data, wait=False)
        res = t.wait()
        assert list(res.status) == [0] * len(ks)
        out = bytearray(len(data))
        s.get(ks, out, wait=False).wait()
        assert bytes(out) == data


def test_errors(daemon):
    _, path, _ = daemon
    with pytest.raises(kvtier.EGEOMETRY):
        kvtier.connect(path, block_bytes=BLOCK * 2)
    with pytest.raises(kvtier.ENODEV):
        kvtier.connect(path + ".missing")
    with kvtier.connect(path) as s:
        with pytest.raises(kvtier.ENOTSUP):
            s.expire()


def test_prometheus(daemon):
    parser = pytest.importorskip("prometheus_client.parser")
    _, path, port = daemon
    with kvtier.connect(path) as s:
        ks = kvtier.keys(list(range(4)), kvtier.Namespace(salt=b"p"), 4)
        s.put(ks, os.urandom(BLOCK))
        s.get(ks, bytearray(BLOCK))
        text = kvtier.stats_prometheus(s)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        fams = {f.name: f for f in parser.text_string_to_metric_families(body.decode())}
        mine = [x for x in fams["kvtier_client_requests"].samples
                if x.labels.get("pid") == str(os.getpid())]
        assert mine and mine[0].value >= 3  # HELLO, put, get (and the stats)
    fams = {f.name: f for f in parser.text_string_to_metric_families(text)}
    hits = [x for x in fams["kvtier_hits"].samples if x.labels.get("tier") == "dram"]
    assert hits and hits[0].value >= 1
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    fams = {f.name: f for f in parser.text_string_to_metric_families(body)}
    assert fams["kvtier_server_connections"].samples[0].value >= 1
    assert fams["kvtier_put_stored"].samples[0].value == 1
    # kvtierd shares its DRAM arena: the put and the get went through it
    assert fams["kvtier_server_zero_copy"].samples[0].value == 1
    assert fams["kvtier_server_zero_copy_blocks"].samples[0].value == 2
    assert fams["kvtier_server_staged_blocks"].samples[0].value == 0


def test_sigterm_closes_cleanly(daemon):
    p, path, _ = daemon
    s = kvtier.connect(path)
    p.send_signal(signal.SIGTERM)
    assert p.wait(10) == 0
    assert "store closed" in p.stderr.read()
    assert not os.path.exists(path)
    with pytest.raises(kvtier.ECLOSED):
        s.lookup(kvtier.keys(list(range(4)), kvtier.Namespace(salt=b"x"), 4))
    s.close()
