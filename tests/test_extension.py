"""The compiled extension mersdk._C: present after `pip install .`, imported in one place, and a source tree
without it still works on the references."""

import pytest

from mersdk import _ext

pytestmark = pytest.mark.skipif(not _ext.available(), reason=f"extension not built: {_ext.IMPORT_ERROR}")


def test_build_info():
    info = _ext.build_info()
    assert info["extension"] is True and info["version"]
    assert isinstance(info["cuda"], bool)


def test_source_tree_without_extension_is_tolerated(tmp_path):
    """A checkout that was never built (no mersdk/_C*.so) imports, reports the reason, and uses the
    references; only a present-but-broken extension raises."""
    import shutil
    import subprocess
    import sys
    import sysconfig
    from pathlib import Path

    import mersdk

    src = Path(mersdk.__file__).parent
    shutil.copytree(
        src, tmp_path / "mersdk", ignore=shutil.ignore_patterns("_C*.so", "_C*.pyd", "models", "__pycache__")
    )
    # an editable install's import hook would find the built _C from anywhere: drop it
    unhook = "import sys; sys.meta_path = [f for f in sys.meta_path if 'editable' not in type(f).__module__]; "
    code = unhook + (
        "import mersdk._ext as e, mersdk.ops as o; assert not e.available(), e.build_info(); "
        "print(o.describe('cpu')['log_mel'])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "NumPy reference" in r.stdout and "mersdk._C" in r.stdout
    (tmp_path / "mersdk" / f"_C{sysconfig.get_config_var('EXT_SUFFIX')}").write_bytes(b"not a shared object")
    r = subprocess.run(
        [sys.executable, "-c", unhook + "import mersdk._ext"], capture_output=True, text=True, cwd=tmp_path
    )
    assert r.returncode != 0 and "ImportError" in r.stderr
