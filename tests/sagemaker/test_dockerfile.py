"""sagemaker/Dockerfile (built at deploy time only): what SageMaker's conventions need is in it."""

from __future__ import annotations

import re

from tests.sagemaker.conftest import ROOT

DOCKERFILE = (ROOT / "sagemaker" / "Dockerfile").read_text()


def test_the_image_installs_the_lock_and_the_pinned_cpu_torch():
    assert "--require-hashes --only-binary=:all: --no-deps -r /tmp/requirements.lock" in DOCKERFILE
    assert re.search(r"--require-hashes --only-binary=:all: --no-deps \\\s+"
                     r"--index-url https://download.pytorch.org/whl/cpu -r /tmp/torch.lock", DOCKERFILE)
    assert "COPY sagemaker/torch.lock /tmp/torch.lock" in DOCKERFILE
    assert "torch==2.13.0+cpu \\\n    --hash=sha256:" in (ROOT / "sagemaker" / "torch.lock").read_text()
    assert "torch==2.13.0" in (ROOT / "pyproject.toml").read_text()  # the same pin as the lstm extra
    assert "pip check" in DOCKERFILE  # torch's own dependencies are in the lock


def test_train_evaluate_and_serve_are_on_the_path_and_run_existing_scripts():
    for command, script in (("train", "train.py"), ("evaluate", "evaluate.py"), ("serve", "inference.py")):
        assert f"/opt/program/sagemaker/{script}" in DOCKERFILE and f"> /usr/local/bin/{command}" in DOCKERFILE
        assert (ROOT / "sagemaker" / script).is_file()
    copied = re.findall(r"^COPY (\S+) ", DOCKERFILE, flags=re.MULTILINE)
    assert all((ROOT / path.rstrip("/")).exists() for path in copied)  # the build context is the repo root
