"""The images build as deployed: each lock resolves, wheels only, for its image's platform; assets pin it.

The resolution test asks PyPI (``pip download --only-binary=:all: --platform ... --require-hashes
--no-deps``; the lock is complete, so ``--no-deps`` loses nothing) for a wheel of every locked
package that the base image's CPython, glibc and architecture accept. A package that only has an
sdist for that target, or a wheel for a newer glibc, fails it: that is the build that would have
tried to compile (``infra.images.download_wheels``, which the Glue asset uses too).
"""

from __future__ import annotations

import dataclasses
import json
import re
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from infra.constructs.glue_wheels import wheelhouse
from infra.images import (
    GLUE,
    IMAGES,
    LOCKS,
    SAGEMAKER,
    SCORER,
    ImageLock,
    WheelDownloadError,
    download_wheels,
    provided,
)
from infra.paths import REPO_ROOT


def locked(image: ImageLock) -> dict[str, str]:
    """name -> pinned version of every package in the lock."""
    pins = {}
    for line in (REPO_ROOT / image.lock).read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s\\;]+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_every_locked_line_is_pinned_with_a_hash():
    for image in LOCKS:
        text = (REPO_ROOT / image.lock).read_text()
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2].strip().split("\n# The following")[0])
        assert len(entries) >= 10, image.lock
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


@pytest.mark.parametrize("image", LOCKS, ids=lambda i: i.name)
def test_the_lock_resolves_to_wheels_for_the_images_platform(image, tmp_path):
    wheels = download_wheels(image, tmp_path)  # raises with pip's message when a package has no such wheel
    assert len(wheels) == len(locked(image)) and not [p for p in tmp_path.iterdir() if p.suffix != ".whl"]
    allowed = set(image.pip_platforms()) | {"any"}
    pins = {canonicalize_name(k): v for k, v in locked(image).items()}
    for wheel in wheels:
        name, version, _, tags = parse_wheel_filename(wheel.name)
        assert any(t.platform in allowed for t in tags), wheel.name
        assert pins[name] == str(version), wheel.name


def test_a_lock_for_amazon_linux_2_would_need_compiling(tmp_path):
    """The check bites: the scorer's llvmlite under the Lambda python:3.11 base's glibc 2.26 has no wheel."""
    entry = re.search(r"^llvmlite==.*?(?=^\S)", (REPO_ROOT / SCORER.lock).read_text(), re.M | re.S).group(0)
    (tmp_path / "one.lock").write_text(entry)
    al2 = dataclasses.replace(SCORER, glibc=(2, 26), lock=str(tmp_path / "one.lock"))
    with pytest.raises(WheelDownloadError, match="llvmlite"):
        download_wheels(al2, tmp_path / "wheels")


def test_the_assets_pin_each_images_platform(dev):
    ingestion = json.loads((dev.outdir / "ingestion.assets.json").read_text())["dockerImages"]
    ml = json.loads((dev.outdir / "ml-pipeline.assets.json").read_text())["dockerImages"]
    [scorer] = ingestion.values()
    [sagemaker] = ml.values()
    assert scorer["source"]["platform"] == SCORER.docker_platform == "linux/arm64"
    assert sagemaker["source"]["platform"] == SAGEMAKER.docker_platform == "linux/amd64"
    # the function runs on the architecture its image is built for (Graviton)
    # every function of the image (the scorer and the two label doors) runs on the architecture it is built for
    fns = [r["Properties"] for _, _, r in dev.resources("AWS::Lambda::Function") if r["Properties"].get("PackageType")]
    assert len(fns) == 3 and all(fn["Architectures"] == ["arm64"] for fn in fns)
    feedback = json.loads((dev.outdir / "feedback.assets.json").read_text())["dockerImages"]
    assert list(feedback) == list(ingestion)  # one image (same content hash), built once


def test_dockerfiles_install_only_the_lock_and_name_their_base():
    for image in IMAGES:
        text = (REPO_ROOT / image.dockerfile).read_text()
        assert f"COPY {image.lock} /tmp/requirements.lock" in text
        installs = re.findall(r"pip install[^\n]*(?:\\\n[^\n]*)*", text)
        for install in installs:
            assert "--only-binary=:all:" in install and "--no-deps" in install, install
        assert re.search(r"^ARG BASE_IMAGE=\S+$", text, re.M) and "FROM ${BASE_IMAGE}" in text


# --- packages from another index (torch from the PyTorch CPU index) ------------------------------


def separate_pins(image: ImageLock) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, sha256 hashes) of the image's hand-written lock for another index."""
    text = (REPO_ROOT / image.separate_lock).read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", "\n".join(ln for ln in text.splitlines() if not ln.startswith("#")))
    out = {}
    for entry in (e for e in entries if e.strip()):
        name, version = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", entry).groups()
        out[name.lower()] = (version, re.findall(r"--hash=sha256:([0-9a-f]+)", entry))
    return out


def test_packages_from_another_index_are_hash_locked_at_the_projects_version():
    from packaging.version import Version

    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    lstm = {Requirement(r).name: Requirement(r) for r in
            re.findall(r'"([^"]+)"', re.search(r"^lstm = \[(.*?)\]", pyproject, re.M).group(1))}  # fmt: skip
    for image in (i for i in IMAGES if i.separately):
        pins = separate_pins(image)
        assert sorted(pins) == sorted(image.separately), image.separate_lock
        for name, (version, hashes) in pins.items():
            assert len(hashes) == 1 and len(hashes[0]) == 64, f"{name}: one sha256 for the image's one platform"
            assert Version(version).public in lstm[name].specifier and Version(version).local == "cpu"
        text = (REPO_ROOT / image.dockerfile).read_text()
        assert f"COPY {image.separate_lock} /tmp/torch.lock" in text
        index = re.escape(image.separate_index)
        assert re.search(rf"--require-hashes[^\n]*\\\s+--index-url {index} -r /tmp/torch.lock", text)


def test_the_separately_locked_wheel_is_the_one_hashed(tmp_path):
    """pip fetches the pinned wheel for the image's target from wherever this machine's pip
    configuration reaches (the index itself or a mirror: ``--require-hashes`` decides) and checks
    its hash. Skipped, saying why, when no source of the wheel is reachable."""
    import subprocess
    import sys

    image = SAGEMAKER
    platforms = [arg for p in image.pip_platforms() for arg in ("--platform", p)]
    run = subprocess.run(  # noqa: S603 - our interpreter, our arguments
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *platforms, "--python-version",
         image.python, "--implementation", "cp", "--abi", image.abi, "--require-hashes", "--index-url",
         image.separate_index, "--disable-pip-version-check", "--quiet", "--retries", "1", "--timeout", "20",
         "-r", str(REPO_ROOT / image.separate_lock), "-d", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=900)  # fmt: skip
    if "DO NOT MATCH THE HASHES" in run.stderr:
        pytest.fail(f"{image.separate_lock}: the wheel's hash differs:\n{run.stderr[-2000:]}")
    if run.returncode != 0:
        pytest.skip(f"no source of {', '.join(image.separately)} reachable: {run.stderr.strip().splitlines()[-1:]}")
    [wheel] = tmp_path.glob("*.whl")
    assert parse_wheel_filename(wheel.name)[1].local == "cpu"


# --- Glue 5.0: only what it lacks, compatible with what it has ---------------------------------


def test_glue_wheels_never_replace_a_module_glue_provides():
    shipped, have = locked(GLUE), provided(GLUE)
    assert have["numpy"] == "1.26.4" and have["pyarrow"] == "17.0.0"  # AWS's published Glue 5.0 list
    assert not set(shipped) & set(have), f"would replace Glue's own modules: {set(shipped) & set(have)}"
    assert {"numba", "scikit-learn", "scipy", "pyyaml", "rich"} <= set(shipped)


def _requires(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    return [Requirement(line.split(":", 1)[1].strip()) for line in lines if line.startswith("Requires-Dist:")]


def test_glue_wheels_and_glue_modules_satisfy_each_other():
    """Every requirement of every shipped wheel is met by the shipped set plus Glue 5.0's own modules."""
    versions = {canonicalize_name(k): v for k, v in {**provided(GLUE), **locked(GLUE)}.items()}
    env = {"python_version": GLUE.python, "python_full_version": f"{GLUE.python}.0", "sys_platform": "linux",
           "platform_machine": GLUE.arch, "platform_system": "Linux", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}  # fmt: skip
    unmet = []
    wheels = sorted(wheelhouse(GLUE).glob("*.whl"))
    assert len(wheels) == len(locked(GLUE))
    for wheel in wheels:
        for req in _requires(wheel):
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            have = versions.get(canonicalize_name(req.name))
            if have is None or not req.specifier.contains(have, prereleases=True):
                unmet.append(f"{wheel.name}: {req} (have {have})")
    assert not unmet, "\n".join(unmet)


def test_glue_jobs_install_the_wheel_zip_from_s3_without_an_index(dev):
    jobs = [r["Properties"]["DefaultArguments"] for _, _, r in dev.resources("AWS::Glue::Job")]
    assets = json.loads((dev.outdir / "processing.assets.json").read_text())["files"]
    zips = {a["destinations"][next(iter(a["destinations"]))]["objectKey"] for a in assets.values()
            if a["source"]["packaging"] == "zip" and any(
                p.suffix == ".whl" for p in (dev.outdir / a["source"]["path"]).glob("*"))}  # fmt: skip
    assert len(zips) == 1
    [key] = zips
    for args in jobs:
        assert args["--python-modules-installer-option"] == "--no-index"
        assert key in json.dumps(args["--additional-python-modules"])
