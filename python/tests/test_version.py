"""The package's version follows the toolkit's (Sources/MulanCore/Version.swift)."""
import re
from pathlib import Path

import mulan_torch

ROOT = Path(__file__).resolve().parents[2]


def test_version_is_the_toolkits():
    swift = (ROOT / "Sources" / "MulanCore" / "Version.swift").read_text()
    match = re.search(r'static let string = "([^"]+)"', swift)
    assert match, "Version.swift names no version"
    assert mulan_torch.__version__ == match.group(1)


def test_installed_metadata_agrees():
    from importlib.metadata import version

    assert version("mulan-torch") == mulan_torch.__version__
