"""libcapsa exports exactly the functions capsa.h declares."""

import re
import subprocess

from conftest import REPO_ROOT


def exported_symbols(library):
    out = subprocess.run(["nm", "-D", "--defined-only", str(library)], check=True, capture_output=True,
                         text=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def declared_functions():
    header = (REPO_ROOT / "include" / "capsa.h").read_text()
    return set(re.findall(r"CAPSA_API[^;]*?\b(capsa_\w+)\s*\(", header, re.S))


def test_only_capsa_h_functions_are_exported(capsa_bin):
    library = capsa_bin.parent / "libcapsa.so"
    exported = exported_symbols(library)
    declared = declared_functions()
    assert declared, "no CAPSA_API declarations found in capsa.h"
    assert exported == declared, (f"exported but not declared: {sorted(exported - declared)}; "
                                  f"declared but not exported: {sorted(declared - exported)}")
