"""`import mersdk` stays light: no torch, transformers or extension until a backend needs them."""

import subprocess
import sys
import tempfile


def test_import_is_light():
    code = (
        "import sys, mersdk; heavy = [m for m in ('torch', 'transformers', 'mersdk._C') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tempfile.gettempdir()
    ).stdout.strip()
    assert out == "[]"
