"""A damaged trained-predictor folder (a file truncated, deleted, replaced or of the
wrong shape) is one clear error naming the file and the folder and saying to retrain,
for ``TrainedModels.load``, ``frontier run`` and ``frontier predictors eval``: exit 2,
no traceback, nothing written."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import joblib
import pandas as pd
import pytest
from frontier_predictors.features import Featurizer
from frontier_predictors.models import TrainedModels, device_spec
from frontier_predictors.profiles import ProfileError, write_table

from frontier_core import OpCall

H100 = "h100-sxm"
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


def _rows() -> pd.DataFrame:
    rp = Featurizer(device_spec(H100)).roofline
    rows = []
    for n in (1024, 4096):
        for k in (1024, 4096):
            for m in (1, 8, 64, 512, 4096):
                t = rp.predict(OpCall("gemm", dtype="bf16", m=m, n=n, k=k))
                rows.append(dict(op="gemm", device=H100, dtype="bf16", m=m, n=n, k=k,
                                 latency_s=t * (1.3 + 0.2 * math.sin(math.log2(m))) + 5e-6))
    return pd.DataFrame(rows)


def _cli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "frontier_core.app.cli", *map(str, args)],
                          capture_output=True, text=True, env=ENV, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(a model folder as `frontier predictors train` writes it, the table it learned)."""
    root = tmp_path_factory.mktemp("trained")
    data = write_table(_rows(), root / "gemm.csv")
    r = _cli("predictors", "train", data, "--backend", "forest", "-o", "model", cwd=root)
    assert r.returncode == 0, r.stderr
    return root / "model", data


def _truncate(name: str, keep: float) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        blob = (folder / name).read_bytes()
        (folder / name).write_bytes(blob[: int(len(blob) * keep)])
    return damage


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(data)


def _wrong_blob(folder: Path) -> None:
    joblib.dump({"backend": "forest", "models": [1, 2]}, folder / "models.joblib")


def _other_backend(folder: Path) -> None:
    meta = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**meta, "backend": "table"}))


#: (id, damage, the file the error names, words of what is wrong)
DAMAGES = [
    ("json-truncated", _truncate("model.json", 0.3), "model.json", "cannot be read"),
    ("json-empty", _write("model.json", b""), "model.json", "cannot be read"),
    ("json-binary", _write("model.json", b"\x00\xff\xfe"), "model.json", "cannot be read"),
    ("json-not-an-object", _write("model.json", b"[1, 2]"), "model.json",
     "does not hold a JSON object"),
    ("json-other-backend", _other_backend, "models.joblib", "does not hold the models"),
    ("joblib-deleted", lambda f: (f / "models.joblib").unlink(), "models.joblib", "is missing"),
    ("joblib-truncated", _truncate("models.joblib", 0.5), "models.joblib", "cannot be read"),
    ("joblib-truncated-early", _truncate("models.joblib", 0.02), "models.joblib",
     "cannot be read"),
    ("joblib-empty", _write("models.joblib", b""), "models.joblib", "cannot be read"),
    ("joblib-garbage", _write("models.joblib", bytes(range(256)) * 8), "models.joblib",
     "cannot be read"),
    ("joblib-wrong-shape", _wrong_blob, "models.joblib", "does not hold the models"),
]


def _damaged_copy(model: Path, tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    damage(folder)
    return folder


def _says_what_and_what_to_do(msg: str, folder: Path, name: str, words: str) -> None:
    assert f"The trained predictor folder {folder} is damaged: {name} {words}" in msg
    assert "retrain it with `frontier predictors train DATA... --backend " in msg
    assert f" -o {folder}`" in msg


@pytest.mark.parametrize("damage,name,words", [d[1:] for d in DAMAGES],
                         ids=[d[0] for d in DAMAGES])
def test_loading_a_damaged_folder_names_the_file(trained, tmp_path, damage, name, words):
    model, _ = trained
    folder = _damaged_copy(model, tmp_path, damage)
    with pytest.raises(ProfileError) as info:
        TrainedModels.load(folder)
    _says_what_and_what_to_do(str(info.value), folder, name, words)


def test_the_undamaged_folder_loads_and_the_results_marker_is_not_needed(trained, tmp_path):
    model, _ = trained
    folder = _damaged_copy(model, tmp_path, lambda f: (f / ".frontier-results.json").unlink())
    assert TrainedModels.load(folder).devices() == [H100]


@pytest.mark.parametrize("case", ["json-truncated", "joblib-truncated", "joblib-empty"])
def test_run_and_eval_on_a_damaged_folder_are_one_paragraph_exit_2(trained, tmp_path, case):
    """joblib-empty once ended in a bare `Aborted.` (click's answer to an EOFError)."""
    model, data = trained
    _, damage, name, words = next(d for d in DAMAGES if d[0] == case)
    folder = _damaged_copy(model, tmp_path, damage)
    (tmp_path / "c.yaml").write_text(
        "model: llama-3.1-8b\n"
        "deployment: {clusters: [{name: main, gpu: h100-sxm}]}\n"
        "predictor: [{name: forest, model: model}, roofline]\n"
        "workload: {arrival: {process: poisson, rate: 4}, num_requests: 5,\n"
        "  prompt_len: {dist: fixed, value: 100}, output_len: {dist: fixed, value: 5}}\n")
    for args in (("run", "c.yaml", "-o", "out"),
                 ("predictors", "eval", folder, data, "--predictions", "out/p.csv")):
        r = _cli(*args, cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr and "Aborted" not in r.stderr
        msg = " ".join(r.stderr.split())
        assert msg.startswith("error: ") and r.stderr.strip().count("\n") == 0
        _says_what_and_what_to_do(msg, folder, name, words)
        assert not (tmp_path / "out").exists()
