# build_has.py — whether the kvtier-bench under test has an optional part, for tests that need it.
import subprocess
import tempfile


def nvme_tier(bench):
    """False when `bench` (and its libkvtier) was built without the NVMe tier.

    Asks the bench itself, with the smallest NVMe run it has (a one-block
    recovery), rather than loading the library here: a sanitizer build's
    library can't be loaded into Python."""
    with tempfile.TemporaryDirectory(prefix="kvt-has-") as d:
        p = subprocess.run([bench, "micro", "--tier", "nvme", "--recovery", "--recovery-blocks",
                            "1", "--runs", "1", "--dir", d, "--json"],
                           capture_output=True, text=True, timeout=60)
    return not (p.returncode != 0 and "built without" in p.stderr)
