"""What the app deploys with Python dependencies: the two images and the Glue jobs, each hash-locked for its platform.

An image's Python packages are installed from a hash-locked requirements file resolved for *that*
image's interpreter, glibc and architecture, wheels only (``--only-binary=:all:``): nothing is
compiled at build time (the Lambda and SageMaker images have no compiler), and what is tested
on a laptop is what is deployed. The CDK asset pins the same platform, so an arm64 laptop and an
x86_64 CI runner build the same image.

- scorer: AWS Lambda on arm64 (Graviton). Base ``lambda/provided:al2023`` (Amazon Linux 2023,
  glibc 2.34) with AL2023's Python 3.11 and the Lambda runtime interface client: the Lambda
  ``python:3.11`` base is Amazon Linux 2 (glibc 2.26), for which numba has no aarch64 wheel
  compatible with numpy >= 2.1 (``uv pip compile`` finds no solution).
- sagemaker: Debian 12 ``python:3.11-slim-bookworm`` (glibc 2.36) on x86_64 (SageMaker training
  and processing instances). torch comes from the PyTorch CPU index (PyPI's x86_64 torch pulls
  gigabytes of CUDA libraries), hash-locked by hand in ``sagemaker/torch.lock`` (uv and the lock
  tests resolve from PyPI only); its own dependencies are in the lock.

- glue: Glue 5.0 workers (x86_64, Amazon Linux 2023, glibc 2.34, Python 3.11). Only what Glue
  lacks is locked, resolved against AWS's published list of the modules Glue 5.0 provides
  (``glue_jobs/glue-5.0-provided.txt``, as constraints): the wheels never replace Glue's numpy,
  pandas or pyarrow under its PySpark. The wheels ship as a CDK asset (``infra/constructs/
  glue_wheels.py``): the jobs install them from S3 with ``--no-index``, no PyPI egress.

``python -m infra.images`` (``make locks``) re-resolves every lock with uv; the lock tests
(``tests/infra/test_images.py``) download each locked wheel for its target from PyPI with pip
and fail if any package would need building.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from infra.paths import REPO_ROOT

INDEX_URL = "https://pypi.org/simple"


@dataclass(frozen=True)
class ImageLock:
    """One image's dependency lock and the platform it is resolved for."""

    name: str
    dockerfile: str | None  # None: not an image (the Glue jobs' wheels)
    lock: str  # the hash-locked requirements file (repo-relative)
    inputs: tuple[str, ...]  # what is locked: pyproject.toml (with extras) and requirements.in files
    extras: tuple[str, ...]
    arch: str  # "aarch64" | "x86_64"
    glibc: tuple[int, int]  # of the base image: the newest manylinux tag its wheels may carry
    python: str = "3.11"
    separately: tuple[str, ...] = ()  # installed from another index in the Dockerfile (not in the lock)
    separate_lock: str | None = None  # their hash-locked requirements file (written by hand: not PyPI)
    separate_index: str = ""  # the index the Dockerfile installs them from
    constraints: str | None = None  # versions the target already has (never shipped, never replaced)

    @property
    def docker_platform(self) -> str:
        return {"aarch64": "linux/arm64", "x86_64": "linux/amd64"}[self.arch]

    @property
    def uv_platform(self) -> str:
        return f"{self.arch}-manylinux_{self.glibc[0]}_{self.glibc[1]}"

    def pip_platforms(self) -> list[str]:
        """Every manylinux tag the base image's glibc accepts (pip does not expand them itself)."""
        major, minor = self.glibc
        return [f"manylinux_{major}_{m}_{self.arch}" for m in range(minor, 16, -1)] + [f"manylinux2014_{self.arch}"]

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")


SCORER = ImageLock(
    name="scorer",
    dockerfile="lambdas/stream_scorer/Dockerfile",
    lock="lambdas/stream_scorer/requirements.lock",
    inputs=("pyproject.toml", "lambdas/stream_scorer/requirements.in"),
    extras=("stream",),
    arch="aarch64",
    glibc=(2, 34),  # Amazon Linux 2023
)
SAGEMAKER = ImageLock(
    name="sagemaker",
    dockerfile="sagemaker/Dockerfile",
    lock="sagemaker/requirements.lock",
    inputs=("pyproject.toml", "sagemaker/requirements.in"),
    extras=(),  # the lstm extra's torch comes from the CPU index; keras and torch's own deps are in requirements.in
    arch="x86_64",
    glibc=(2, 36),  # Debian 12 (bookworm)
    separately=("torch",),
    separate_lock="sagemaker/torch.lock",
    separate_index="https://download.pytorch.org/whl/cpu",
)
GLUE = ImageLock(
    name="glue",
    dockerfile=None,
    lock="glue_jobs/requirements.lock",
    inputs=("glue_jobs/requirements.in",),
    extras=(),
    arch="x86_64",
    glibc=(2, 34),  # Glue 5.0 runs on Amazon Linux 2023
    constraints="glue_jobs/glue-5.0-provided.txt",
)
IMAGES = (SCORER, SAGEMAKER)
LOCKS = (SCORER, SAGEMAKER, GLUE)


def provided(lock: ImageLock) -> dict[str, str]:
    """name -> version of what ``lock``'s target already has (its constraints file)."""
    if lock.constraints is None:
        return {}
    pins = {}
    for line in (REPO_ROOT / lock.constraints).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.strip().split("==")
            pins[name.lower()] = version
    return pins


def base_image_args(base: str) -> dict[str, str] | None:
    """The Docker build arguments of an image asset: ``BASE_IMAGE`` when the config pins one
    (``-c scorer_base_image=...@sha256:...``), else none (the Dockerfile's default tag)."""
    return {"BASE_IMAGE": base} if base else None


class WheelDownloadError(RuntimeError):
    """The locked wheels could not be fetched (no PyPI access, or a lock that does not resolve)."""


def pip_environment() -> dict[str, str]:
    """The environment with pip's own settings removed: the index is PyPI and nothing else
    (no config files, local indexes, find-links or constraints of the machine), except its CA bundle."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    return {**env, "PIP_CONFIG_FILE": os.devnull}


def download_wheels(lock: ImageLock, dest: Path) -> list[Path]:
    """Every wheel of ``lock`` for its target platform, hash-checked, from PyPI into ``dest``.

    ``--only-binary=:all:`` with the target's tags: a package with no wheel for that CPython,
    glibc and architecture fails here, which is where the image build would have tried to compile.
    """
    platforms = [arg for p in lock.pip_platforms() for arg in ("--platform", p)]
    run = subprocess.run(  # noqa: S603 - our interpreter, our arguments
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *platforms,
         "--python-version", lock.python, "--implementation", "cp", "--abi", lock.abi,
         "--require-hashes", "--index-url", INDEX_URL, "--no-cache-dir",
         "--disable-pip-version-check", "--quiet", "-r", str(REPO_ROOT / lock.lock), "-d", str(dest)],
        env=pip_environment(), capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    if run.returncode != 0:
        raise WheelDownloadError(
            f"{lock.lock} does not resolve to wheels for {lock.docker_platform} (glibc "
            f"{lock.glibc[0]}.{lock.glibc[1]}, CPython {lock.python}) from {INDEX_URL}:\n{run.stderr.strip()[-3000:]}"
        )
    return sorted(dest.glob("*.whl"))


def compile_lock(image: ImageLock) -> None:
    """Re-resolve ``image``'s lock with uv (PyPI only, wheels only, hashes)."""
    uv = shutil.which("uv") or str(REPO_ROOT / ".venv" / "bin" / "uv")
    cmd = [uv, "pip", "compile", *image.inputs, *[f"--extra={e}" for e in image.extras],
           f"--python-platform={image.uv_platform}", f"--python-version={image.python}",
           "--only-binary=:all:", "--generate-hashes", f"--index-url={INDEX_URL}", "--no-config",
           "--custom-compile-command=make locks", f"--output-file={image.lock}"]  # fmt: skip
    if image.constraints:
        cmd += [f"--constraint={image.constraints}", *[f"--no-emit-package={p}" for p in provided(image)]]
    subprocess.run(cmd, cwd=REPO_ROOT, check=True)  # noqa: S603 - our own tool, our own arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="re-resolve the images' dependency locks (uv, PyPI)")
    parser.add_argument("locks", nargs="*", choices=[i.name for i in LOCKS] + [[]], default=[])
    names = parser.parse_args(argv).locks or [i.name for i in LOCKS]
    for image in LOCKS:
        if image.name in names:
            compile_lock(image)
            print(f"{image.lock}: locked for {image.docker_platform}, glibc {image.glibc[0]}.{image.glibc[1]}",
                  file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
