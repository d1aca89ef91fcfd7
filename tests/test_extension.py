"""The compiled extension mersdk._C: present after `pip install .`, and its CPU routine is correct."""

import numpy as np
import pytest

from mersdk import _ext

pytestmark = pytest.mark.skipif(not _ext.available(), reason=f"extension not built: {_ext.IMPORT_ERROR}")


def test_build_info():
    info = _ext.build_info()
    assert info["extension"] is True and info["version"]
    assert isinstance(info["cuda"], bool)


@pytest.mark.parametrize("n", [0, 1, 97, 1025, 3_000_000])
def test_audio_stats_matches_numpy(n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    peak, rms, bad = _ext._C.audio_stats(x)
    assert bad == 0
    assert peak == (np.abs(x).max() if n else 0.0)
    assert rms == pytest.approx(np.sqrt(np.mean(x.astype(np.float64) ** 2)) if n else 0.0, rel=1e-9)


def test_audio_stats_counts_nonfinite():
    x = np.array([1.0, np.nan, -2.0, np.inf, -np.inf], np.float32)
    peak, rms, bad = _ext._C.audio_stats(x)
    assert (peak, bad) == (2.0, 3) and rms == pytest.approx(np.sqrt(2.5))


def test_audio_stats_rejects_bad_arrays():
    with pytest.raises(TypeError, match="float32"):
        _ext._C.audio_stats(np.zeros(4, np.float64))
    with pytest.raises(ValueError, match="1-D"):
        _ext._C.audio_stats(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        _ext._C.audio_stats(np.zeros(8, np.float32)[::2])


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
    shutil.copytree(src, tmp_path / "mersdk", ignore=shutil.ignore_patterns("_C*.so", "_C*.pyd", "models", "__pycache__"))
    # an editable install's import hook would find the built _C from anywhere: drop it
    unhook = "import sys; sys.meta_path = [f for f in sys.meta_path if 'editable' not in type(f).__module__]; "
    code = unhook + ("import mersdk._ext as e, mersdk.ops as o; assert not e.available(), e.build_info(); "
                     "print(o.describe('cpu')['log_mel'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "NumPy reference" in r.stdout and "mersdk._C" in r.stdout
    (tmp_path / "mersdk" / f"_C{sysconfig.get_config_var('EXT_SUFFIX')}").write_bytes(b"not a shared object")
    r = subprocess.run([sys.executable, "-c", unhook + "import mersdk._ext"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0 and "ImportError" in r.stderr
