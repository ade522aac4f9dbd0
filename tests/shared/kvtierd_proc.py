"""kvtierd_proc.py — kvtierd as a Python test's child process: started with
its flags, ready once its socket accepts a connection, stopped with SIGTERM.
Used by tests/shared/test_connect.py and tests/python/test_vllm_shared.py."""
import signal
import socket
import subprocess
import time
from contextlib import contextmanager


@contextmanager
def running_kvtierd(kvtierd, path, args, tries):
    """Yields the Popen of `kvtierd --socket path *args` once a connection to
    path is accepted (or after tries * 10 ms; the test then fails on its own
    connect); SIGTERM and wait at the end."""
    p = subprocess.Popen([kvtierd, "--socket", path] + args, stderr=subprocess.PIPE, text=True)
    try:
        # Ready when a connection is accepted (kvtierd links the socket into
        # place only once it listens; this check does not rely on that).
        for _ in range(tries):
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as probe:
                if probe.connect_ex(path) == 0:
                    break
            time.sleep(0.01)
        yield p
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(10)
        p.stderr.close()
