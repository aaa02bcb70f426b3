"""Build datagen's wheel and check that it holds every package and every shipped file of the checkout.

`pip install -e .` reads the checkout itself, so a package or a template left out of the
wheel goes unnoticed until a user installs the release. Every git-tracked file under
datagen/, templates/, training/ and recipes/ must be in the wheel, at its installed path.

    $ python scripts/check_wheel.py
    wheel datagen-0.1.0-py3-none-any.whl: 214 files, every package and shipped file present
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALLED_AS = {"datagen": "datagen", "templates": "datagen/templates", "training": "datagen/training", "recipes": "datagen/recipes"}


def shipped_files() -> list[str]:
    """The installed path of every tracked file under the shipped folders."""
    tracked = subprocess.run(["git", "ls-files", *INSTALLED_AS], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return sorted(INSTALLED_AS[path.split("/", 1)[0]] + "/" + path.split("/", 1)[1] for path in tracked)


def build_wheel(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "--wheel-dir", str(out), str(ROOT)], check=True)
    (wheel,) = out.glob("datagen-*.whl")
    return wheel


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_wheel(Path(tmp))
        in_wheel = set(zipfile.ZipFile(wheel).namelist())
    missing = [path for path in shipped_files() if path not in in_wheel]
    if missing:
        print(f"wheel {wheel.name} lacks {len(missing)} shipped files:", *missing[:30], sep="\n  ", file=sys.stderr)
        return 1
    print(f"wheel {wheel.name}: {len(in_wheel)} files, every package and shipped file present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
