"""Test support shared by capsa's Python test suites and benchmarks.

    ociimage    writes OCI image layouts and `docker save` archives (stdlib only)
    testimages  the standard test images, built from Debian's busybox-static
    registry    a throwaway local registry (docker-registry) to push them to

Import it with the tests/ directory on sys.path (tests/integration/conftest.py
does that): `from lib import ociimage, testimages, registry`.
"""
