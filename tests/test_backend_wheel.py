"""The built wheel, installed in a fresh virtual environment, registers `backend="astgen"` with torch.compile."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent

# Run in the fresh environment: the default astgen backend, found by name.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    from torch import nn
    import astgen
    from astgen.piecewise import astgen_backend

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.attentions = nn.ModuleList(nn.MultiheadAttention(8, 2, batch_first=True) for _ in range(2))
            self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))

        def forward(self, x):
            for attention in self.attentions:
                x = x + attention(x, x, x, need_weights=False)[0]
                x = x + self.mlp(x)
            return x

    torch.manual_seed(0)
    model = Stack().eval()
    compiled = torch.compile(model, backend="astgen", dynamic=True)
    errors = []
    with torch.no_grad():
        for seq in (3, 6):
            x = torch.randn(2, seq, 8)
            errors.append((compiled(x) - model(x)).abs().max().item())
    json.dump(
        {
            "astgen": astgen.__file__,
            "torch": torch.__version__,
            "errors": errors,
            "sources": astgen_backend.sources,
            "piece_backend": astgen_backend.piece_backend,
        },
        sys.stdout,
    )
    """
)


def _run(*command: str | os.PathLike[str], cwd: Path) -> str:
    result = subprocess.run(
        [os.fspath(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{command[:4]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_wheel_in_a_fresh_venv_gives_backend_astgen_by_name(tmp_path: Path) -> None:
    # Build from a copy: an in-tree build would leave build/ and egg-info
    # behind in the working tree that others share.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "astgen", source / "astgen", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    # --no-deps and --no-index: pip must never fetch anything, torch least of all.
    _run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
        "--wheel-dir", wheels, source, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = wheels.glob("astgen-*.whl")

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel,
        cwd=tmp_path,
    )  # fmt: skip
    # torch (and astor) from this environment, as a plain path entry: its .pth
    # files, the editable install of astgen among them, are not run.
    (fresh_site,) = (venv / "lib").glob("python3*/site-packages")
    (fresh_site / "torch_from_project.pth").write_text(
        "\n".join(path for path in site.getsitepackages() if Path(path, "torch").is_dir()) + "\n"
    )

    # -I: no PYTHONPATH, no user site, no current directory on sys.path.
    report = json.loads(_run(python, "-I", "-c", SCRIPT, cwd=tmp_path))
    assert Path(report["astgen"]).is_relative_to(venv), report["astgen"]
    assert report["torch"] == torch.__version__
    assert report["piece_backend"] == "inductor"
    assert max(report["errors"]) < 1e-4, report["errors"]
    # One dynamic graph for both lengths; each attention a piece between compiled ones.
    (source_text,) = report["sources"]
    assert source_text.count("_fn(") == 5, source_text
