"""The images build as deployed: each lock resolves, wheels only, for its image's platform; assets pin it.

The resolution test asks PyPI (``pip download --only-binary=:all: --platform ... --require-hashes
--no-deps``; the lock is complete, so ``--no-deps`` loses nothing) for a wheel of every locked
package that the base image's CPython, glibc and architecture accept. A package that only has an
sdist for that target, or a wheel for a newer glibc, fails it: that is the build that would have
tried to compile. Downloads go through a pip cache in the system temp dir (second runs are fast).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from infra.images import IMAGES, INDEX_URL, SAGEMAKER, SCORER, ImageLock
from infra.paths import REPO_ROOT

CACHE = Path(tempfile.gettempdir()) / "finsentry-lock-wheels"


def locked(image: ImageLock) -> dict[str, str]:
    """name -> pinned version of every package in the lock."""
    pins = {}
    for line in (REPO_ROOT / image.lock).read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s\\;]+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_every_locked_line_is_pinned_with_a_hash():
    for image in IMAGES:
        text = (REPO_ROOT / image.lock).read_text()
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2].strip())
        assert len(entries) > 20, image.lock
        for entry in entries:
            assert "==" in entry and "--hash=sha256:" in entry, f"{image.lock}: {entry.splitlines()[0]}"


def test_locks_cover_the_projects_dependencies_at_the_versions_it_asks_for():
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    core = re.search(r"^dependencies = \[(.*?)^\]", pyproject, re.S | re.M).group(1)
    wanted = [Requirement(r) for r in re.findall(r'"([^"]+)"', core)]
    stream = re.search(r"^stream = \[(.*?)\]", pyproject, re.M).group(1)
    for image in IMAGES:
        pins = locked(image)
        needs = wanted + ([Requirement(r) for r in re.findall(r'"([^"]+)"', stream)] if image is SCORER else [])
        for req in needs:
            name = req.name.lower()
            assert name in pins, f"{image.lock} lacks {name}"
            assert req.specifier.contains(pins[name], prereleases=True), f"{image.lock}: {name}=={pins[name]} !~ {req}"
        for name in image.separately:
            assert name not in pins, f"{name} is installed separately in {image.dockerfile}"
    assert "awslambdaric" in locked(SCORER)  # the runtime client of the OS-only base image
    assert "keras" in locked(SAGEMAKER) and "sympy" in locked(SAGEMAKER)  # the lstm extra without torch


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_the_lock_resolves_to_wheels_for_the_images_platform(image, tmp_path):
    platforms = [arg for p in image.pip_platforms() for arg in ("--platform", p)]
    run = subprocess.run(  # noqa: S603 - our interpreter, our arguments
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *platforms,
         "--python-version", image.python, "--implementation", "cp", "--abi", image.abi,
         "--require-hashes", "--index-url", INDEX_URL, "--cache-dir", str(CACHE),
         "--disable-pip-version-check", "--quiet", "-r", str(REPO_ROOT / image.lock), "-d", str(tmp_path)],
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},  # only PyPI: no local indexes, constraints or wheels
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, f"{image.lock} does not resolve for {image.docker_platform}:\n{run.stderr[-3000:]}"
    wheels = sorted(tmp_path.glob("*.whl"))
    assert len(wheels) == len(locked(image)) and not [p for p in tmp_path.iterdir() if p.suffix != ".whl"]
    allowed = set(image.pip_platforms()) | {"any"}
    pins = {canonicalize_name(k): v for k, v in locked(image).items()}
    for wheel in wheels:
        name, version, _, tags = parse_wheel_filename(wheel.name)
        assert any(t.platform in allowed for t in tags), wheel.name
        assert pins[name] == str(version), wheel.name


def test_the_assets_pin_each_images_platform(dev):
    ingestion = json.loads((dev.outdir / "ingestion.assets.json").read_text())["dockerImages"]
    ml = json.loads((dev.outdir / "ml-pipeline.assets.json").read_text())["dockerImages"]
    [scorer] = ingestion.values()
    [sagemaker] = ml.values()
    assert scorer["source"]["platform"] == SCORER.docker_platform == "linux/arm64"
    assert sagemaker["source"]["platform"] == SAGEMAKER.docker_platform == "linux/amd64"
    # the function runs on the architecture its image is built for (Graviton)
    [fn] = [r["Properties"] for _, _, r in dev.resources("AWS::Lambda::Function") if r["Properties"].get("PackageType")]
    assert fn["Architectures"] == ["arm64"]


def test_dockerfiles_install_only_the_lock_and_name_their_base():
    for image in IMAGES:
        text = (REPO_ROOT / image.dockerfile).read_text()
        assert f"COPY {image.lock} /tmp/requirements.lock" in text
        installs = re.findall(r"pip install[^\n]*(?:\\\n[^\n]*)*", text)
        for install in installs:
            assert "--only-binary=:all:" in install and "--no-deps" in install, install
        assert re.search(r"^ARG BASE_IMAGE=\S+$", text, re.M) and "FROM ${BASE_IMAGE}" in text
