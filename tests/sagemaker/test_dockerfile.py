"""sagemaker/Dockerfile (built at deploy time only): what SageMaker's conventions need is in it."""

from __future__ import annotations

import re

from tests.sagemaker.conftest import ROOT

DOCKERFILE = (ROOT / "sagemaker" / "Dockerfile").read_text()


def test_the_image_installs_the_lstm_extra_with_the_pinned_cpu_torch():
    assert 'pip install --no-cache-dir ".[lstm]"' in DOCKERFILE
    assert re.search(r'--index-url https://download.pytorch.org/whl/cpu "torch==2\.13\.0"', DOCKERFILE)
    assert "torch==2.13.0" in (ROOT / "pyproject.toml").read_text()  # the same pin as the extra


def test_train_evaluate_and_serve_are_on_the_path_and_run_existing_scripts():
    for command, script in (("train", "train.py"), ("evaluate", "evaluate.py"), ("serve", "inference.py")):
        assert f"/opt/program/sagemaker/{script}" in DOCKERFILE and f"> /usr/local/bin/{command}" in DOCKERFILE
        assert (ROOT / "sagemaker" / script).is_file()
    copied = re.findall(r"^COPY (\S+) ", DOCKERFILE, flags=re.MULTILINE)
    assert all((ROOT / path.rstrip("/")).exists() for path in copied)  # the build context is the repo root
