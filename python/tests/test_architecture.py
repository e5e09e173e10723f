"""docs/architecture.md's module table is Package.swift's (scripts/architecture-stats.py --check)."""
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def test_module_table_matches_package_swift():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "architecture-stats.py"), "--check"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
