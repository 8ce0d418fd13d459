"""Faults end to end, as an operator meets them: a user folder named as demo data, a checkpoint
from a stranger, a sweep into a finished sweep, SIGTERM, Ctrl-C in a sweep, a diverging run, a
truncated image, SIGKILL then resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import run_cli

pytestmark = pytest.mark.slow

QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=none"]
SMALL = [*QUIET, "data.n_images=200", "data.image_size=32"]
ENV = {"OMP_NUM_THREADS": "1"}


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr[-2000:]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, stderr[-2000:]
    return errors[0]


def _popen(args, **kw):
    env = {**os.environ, **ENV}
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _wait_for(path, proc, timeout=240):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, f"ended before {path} appeared: {proc.communicate()[1][-2000:]}"
        assert time.time() - t0 < timeout, f"{path} did not appear"
        time.sleep(0.05)


def _status(run_dir) -> dict:
    return json.loads((run_dir / "status.json").read_text())


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("faults") / "run"
    r = run_cli(["-m", "cvexp", *SMALL, "debug=fast", f"hydra.run.dir={run}"], env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    return run


# ------------------------------------------------------------------------------- data loss
def test_user_root_on_demo_data_is_refused_and_kept(tmp_path):
    user = tmp_path / "my_dataset"
    (user / "cats").mkdir(parents=True)
    (user / "cats" / "1.jpg").write_bytes(b"precious")
    r = run_cli(["-m", "cvexp", f"+data.root={user}", *SMALL, "debug=fast", f"hydra.run.dir={tmp_path / 'r'}"],
                env=ENV)
    assert r.returncode == 2
    assert "data.root is not used with demo data" in _one_error_line(r.stderr)
    assert (user / "cats" / "1.jpg").read_bytes() == b"precious"


def _doctored_checkpoint(src, dst, edit):
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    edit(ckpt["cvexp"]["config"])
    torch.save(ckpt, dst)


def test_checkpoint_cannot_run_code_or_touch_folders(trained_run, tmp_path):
    best = trained_run / "checkpoints" / "best.ckpt"
    victim = tmp_path / "created_by_checkpoint"
    _doctored_checkpoint(best, tmp_path / "touch.ckpt",
                         lambda c: c["model"].update({"_target_": "pathlib.Path.touch", "self": str(victim)}))
    r = run_cli(["-m", "cvexp.eval", f"ckpt_path={tmp_path / 'touch.ckpt'}", f"hydra.run.dir={tmp_path / 'e1'}"],
                env=ENV)
    assert r.returncode == 2 and "refused" in _one_error_line(r.stderr)
    assert not victim.exists()

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep")
    for i, edit in enumerate([lambda c: c["data"].update(root=str(precious)),
                              lambda c: c["data"].update(cache_dir=str(precious))]):
        doctored = tmp_path / f"data{i}.ckpt"
        _doctored_checkpoint(best, doctored, edit)
        r = run_cli(["-m", "cvexp.eval", f"ckpt_path={doctored}", "trainer.limit_test_batches=1",
                     f"hydra.run.dir={tmp_path / f'e{i + 2}'}"], env=ENV)
        assert sorted(p.name for p in precious.iterdir()) == ["thesis.tex"], r.stderr[-1000:]
        assert (precious / "thesis.tex").read_text() == "keep"
    for tool in ("cvexp.analyze", "cvexp.cross_eval"):
        args = [f"ckpt_path={tmp_path / 'touch.ckpt'}"] if tool == "cvexp.analyze" else \
            [f"ckpts=[{tmp_path / 'touch.ckpt'}]", "datasets=[demo_wildlife]"]
        r = run_cli(["-m", tool, *args, f"hydra.run.dir={tmp_path / tool}"], env=ENV)
        assert r.returncode == 2 and "refused" in _one_error_line(r.stderr)
    assert not victim.exists()


def test_sweep_into_a_finished_sweep_is_refused_before_hydra_writes(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli(["-m", "cvexp", "-m", "seed=1", *SMALL, "debug=fast", f"hydra.sweep.dir={sweep}"], env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    before = {p: p.read_bytes() for p in (sweep / "0" / ".hydra").iterdir()}
    r = run_cli(["-m", "cvexp", "-m", "seed=2", *SMALL, "debug=fast", f"hydra.sweep.dir={sweep}"], env=ENV)
    assert r.returncode == 2 and "already holds a sweep" in _one_error_line(r.stderr)
    assert {p: p.read_bytes() for p in (sweep / "0" / ".hydra").iterdir()} == before
    assert not (sweep / "1").exists()


def test_output_dir_that_is_a_file_is_one_line(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = run_cli(["-m", "cvexp", *SMALL, f"hydra.run.dir={f / 'run'}"], env=ENV)
    assert r.returncode == 2 and "is a file" in _one_error_line(r.stderr)


def test_config_errors_are_one_line_before_any_work(tmp_path):
    r = run_cli(["-m", "cvexp", "trainer.max_epochs=abc", *SMALL, f"hydra.run.dir={tmp_path / 'r'}"], env=ENV)
    assert r.returncode == 2
    assert _one_error_line(r.stderr).startswith("error: trainer.max_epochs='abc' is not allowed")
    assert not (tmp_path / "r" / "split.csv").exists()  # no data was read
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    r = run_cli(["-m", "cvexp", f"ckpt_path={junk}", *SMALL, f"hydra.run.dir={tmp_path / 'r2'}"], env=ENV)
    assert r.returncode == 2 and "junk.ckpt" in _one_error_line(r.stderr)
    assert not (tmp_path / "r2" / "split.csv").exists()


def test_checkpoint_of_another_shape_is_one_line(trained_run, tmp_path):
    r = run_cli(["-m", "cvexp", f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}", "model.blocks.0.channels=8",
                 *SMALL, "debug=fast", f"hydra.run.dir={tmp_path / 'r'}"], env=ENV)
    assert r.returncode == 2 and "does not fit this run's model" in _one_error_line(r.stderr)


# ------------------------------------------------------------------------------- signals
def test_sigterm_saves_last_marks_interrupted_and_exits_143_then_resumes(tmp_path):
    run = tmp_path / "run"
    p = _popen(["-m", "cvexp", *SMALL, "trainer.max_epochs=40", f"hydra.run.dir={run}"])
    _wait_for(run / "checkpoints" / "last.ckpt", p)
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err[-2000:]
    status = _status(run)
    assert status["status"] == "interrupted" and status["signal"] == "SIGTERM"
    assert f"resume={run}" in err
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] > 0
    r = run_cli(["-m", "cvexp", f"resume={run}", "trainer.max_epochs=0"], env=ENV)
    assert r.returncode == 2 and "give a larger trainer.max_epochs" in _one_error_line(r.stderr)
    r = run_cli(["-m", "cvexp", f"resume={run}", f"trainer.max_epochs={last['epoch'] + 2}"], env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _status(run)["status"] == "completed" and _status(run)["resumes"] == 2  # (one refused)
    assert "test/acc" in json.loads((run / "metrics.json").read_text())


def test_one_ctrl_c_ends_the_whole_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    p = _popen(["-m", "cvexp", "-m", "seed=1,2,3", *SMALL, "trainer.max_epochs=40", f"hydra.sweep.dir={sweep}"])
    _wait_for(sweep / "0" / "checkpoints" / "last.ckpt", p)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    assert _status(sweep / "0")["status"] == "interrupted"
    assert not (sweep / "1").exists()
    assert "interrupted" in (sweep / "report.md").read_text()


# ------------------------------------------------------------------------------- bad runs
def test_diverging_run_fails_and_keeps_no_nan_checkpoint(tmp_path):
    run = tmp_path / "run"
    r = run_cli(["-m", "cvexp", "optimizer=sgd", "optimizer.lr=1e20", *SMALL, "debug=fast",
                 f"hydra.run.dir={run}"], env=ENV)
    assert r.returncode == 2
    assert "training diverged" in _one_error_line(r.stderr)
    assert _status(run)["status"] == "failed"
    assert not (run / "metrics.json").exists()
    for ckpt in (run / "checkpoints").glob("*.ckpt") if (run / "checkpoints").exists() else []:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_truncated_jpeg_is_refused_or_skipped(tmp_path):
    from cvexp.data.demo_wildlife import write_demo_wildlife

    root = tmp_path / "wildlife"
    write_demo_wildlife(root, n_images=200, seed=0)
    victim = sorted((root / "dog").glob("*.jpg"))[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    args = ["-m", "cvexp", "data=wildlife", f"data.root={root}", "data.num_workers=0", "data.image_size=32",
            *QUIET, "debug=fast"]
    r = run_cli([*args, f"hydra.run.dir={tmp_path / 'a'}"], env=ENV)
    assert r.returncode == 2 and victim.name in _one_error_line(r.stderr)
    r = run_cli([*args, "data.skip_corrupt=true", f"hydra.run.dir={tmp_path / 'b'}"], env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    assert victim.name in (tmp_path / "b" / "skipped_files.txt").read_text()


def _tree(d):
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_copied_run_resumes_into_itself_and_its_checkpoint_names_no_files(trained_run, tmp_path):
    """A run directory copied from another run (or from a stranger), with a last.ckpt whose callback
    state names files elsewhere: resuming it loads none of them, deletes none, and writes nothing
    outside the copy; an interrupted run is never overwritten by a new run."""
    import shutil

    before = _tree(trained_run)
    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    (run / "metrics.json").unlink()
    status = {**_status(run), "status": "interrupted"}
    (run / "status.json").write_text(json.dumps(status))
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    key = next(k for k in ckpt["callbacks"] if k.startswith("ModelCheckpoint"))
    ckpt["callbacks"][key].update(dirpath=os.path.realpath(run / "checkpoints"),
                                  best_model_path="http://127.0.0.1:9/evil.ckpt", kth_best_model_path=str(victim),
                                  best_k_models={str(victim): torch.tensor(-1.0)}, best_model_score=torch.tensor(-1.0))
    torch.save(ckpt, run / "checkpoints" / "last.ckpt")

    r = run_cli(["-m", "cvexp", *SMALL[:3], "debug=fast", f"hydra.run.dir={run}"], env=ENV)
    assert r.returncode == 2 and "resume=" in _one_error_line(r.stderr)  # a new run into it: refused
    r = run_cli(["-m", "cvexp", f"resume={run}", "trainer.max_epochs=2"], env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "outside this run's checkpoint folder" in r.stderr
    assert victim.read_text() == "keep"
    assert _tree(trained_run) == before  # the run it was copied from is untouched
    assert json.loads((run / "metrics.json").read_text())["test/acc"] >= 0
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "split.csv").is_file()


# ------------------------------------------------------------------------------- resume
def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    common = [*SMALL, "trainer.max_epochs=4", "trainer.deterministic=true", "seed=3"]
    full = tmp_path / "full"
    r = run_cli(["-m", "cvexp", *common, f"hydra.run.dir={full}"], env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]

    run = tmp_path / "killed"
    p = _popen(["-m", "cvexp", *common, f"hydra.run.dir={run}"])
    _wait_for(run / "checkpoints" / "last.ckpt", p)
    p.kill()
    p.communicate()
    assert _status(run)["status"] == "running"  # SIGKILL leaves no chance to write anything
    epoch = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["epoch"]
    assert epoch < 3, "the run finished before it was killed; the test proves nothing"
    r = run_cli(["-m", "cvexp", f"resume={run}"], env=ENV)
    assert r.returncode == 0, r.stderr[-2000:]

    assert json.loads((run / "metrics.json").read_text()) == json.loads((full / "metrics.json").read_text())
    for name in ("best.ckpt", "last.ckpt"):
        a, b = _weights(full / "checkpoints" / name), _weights(run / "checkpoints" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert (run / "history.csv").read_text() == (full / "history.csv").read_text()
    assert (run / ".hydra" / "config.yaml").is_file()  # the first invocation's Hydra files stay
    assert any((run / ".hydra").glob("resume-*/config.yaml"))
