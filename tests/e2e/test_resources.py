"""--cpus and --memory shape the guest the workload sees."""

import re

import pytest


def test_two_cpus(capsa):
    result = capsa.run("nproc", options=["--cpus", "2"])
    assert result.returncode == 0, result
    assert result.stdout.strip() == "2", result


@pytest.fixture(scope="module")
def memtotal_mib(capsa):
    """MemTotal of a guest booted with --memory SIZE MiB (one boot per size)."""
    seen = {}

    def measure(size_mib):
        if size_mib not in seen:
            result = capsa.run("cat", "/proc/meminfo", options=["--memory", f"{size_mib}M"])
            assert result.returncode == 0, result
            match = re.search(r"^MemTotal:\s+(\d+) kB$", result.stdout, re.M)
            assert match, result
            seen[size_mib] = int(match.group(1)) / 1024
        return seen[size_mib]
    return measure


@pytest.mark.parametrize("size_mib", [256, 384])
def test_memory_size(memtotal_mib, size_mib):
    # The kernel keeps its own image and reserved areas out of MemTotal.
    total = memtotal_mib(size_mib)
    assert 0.78 * size_mib <= total <= size_mib, f"MemTotal {total:.1f} MiB with --memory {size_mib}M"


def test_memory_difference_follows_option(memtotal_mib):
    difference = memtotal_mib(384) - memtotal_mib(256)
    assert 112 <= difference <= 136, f"384M and 256M guests differ by {difference:.1f} MiB, not ~128"
