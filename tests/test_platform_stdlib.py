"""`platform/` is a plain folder, so the standard library's `platform` module must win."""

import platform
import sysconfig
from pathlib import Path


def test_platform_is_the_standard_library():
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(platform.__file__).resolve().parent == stdlib
    assert platform.system()  # the attribute Django/pytest/uuid rely on


def test_platform_folder_has_no_init():
    root = Path(__file__).resolve().parent.parent
    assert (root / "platform" / "modelcommons" / "__init__.py").exists()
    assert not (root / "platform" / "__init__.py").exists()
