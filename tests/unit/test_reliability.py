"""Faults and hostile inputs, unit level (no training, no subprocess): nothing the user made is
deleted, nothing from a file is executed, writes are atomic, config errors are one line."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from omegaconf import OmegaConf

from cvexp.errors import CheckpointError, ConfigError, DataError, DivergenceError, RunDirError


# --------------------------------------------------------------------------- generated-data caches
def _fill(tmp):
    (tmp / "a.txt").write_text("generated")


def test_write_once_never_deletes_a_user_folder(tmp_path):
    from cvexp.data.cache import write_once

    user = tmp_path / "my_dataset"
    (user / "cats").mkdir(parents=True)
    (user / "cats" / "1.jpg").write_bytes(b"precious")
    with pytest.raises(DataError, match="did not generate"):
        write_once(user, "demo_wildlife", {"version": 1}, _fill)
    assert (user / "cats" / "1.jpg").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_dataset"]  # no temporary left over


def test_write_once_refuses_another_generators_folder_and_a_file(tmp_path):
    from cvexp.data.cache import MARKER, write_once

    other = tmp_path / "other"
    other.mkdir()
    (other / MARKER).write_text(json.dumps({"generator": "demo_streets", "version": 1}))
    (other / "x").write_text("keep")
    with pytest.raises(DataError):
        write_once(other, "demo_wildlife", {"version": 1}, _fill)
    assert (other / "x").read_text() == "keep"
    f = tmp_path / "file"
    f.write_text("keep")
    with pytest.raises(DataError, match="not a folder"):
        write_once(f, "demo_wildlife", {"version": 1}, _fill)
    assert f.read_text() == "keep"


def test_write_once_fills_empty_folder_and_replaces_only_its_own_outdated_copy(tmp_path):
    from cvexp.data.cache import MARKER, read_marker, write_once

    root = tmp_path / "cache"
    root.mkdir()
    write_once(root, "demo_wildlife", {"version": 1}, _fill)  # an empty folder is fine
    assert read_marker(root) == {"generator": "demo_wildlife", "version": 1}
    calls = []
    write_once(root, "demo_wildlife", {"version": 1}, lambda t: calls.append(t))
    assert calls == []  # same settings: reused
    write_once(root, "demo_wildlife", {"version": 2}, _fill)
    assert read_marker(root)["version"] == 2
    legacy = tmp_path / "legacy"  # a copy written before markers named their generator
    legacy.mkdir()
    (legacy / MARKER).write_text(json.dumps({"version": 0}))
    write_once(legacy, "demo_wildlife", {"version": 1}, _fill)
    assert read_marker(legacy)["generator"] == "demo_wildlife"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "legacy"]


def test_a_parallel_jobs_identical_copy_is_kept_while_it_may_be_read(tmp_path):
    from cvexp.data.cache import read_marker, write_once

    root = tmp_path / "cache"

    def fill_while_another_job_finishes_first(tmp):
        _fill(tmp)
        write_once(root, "demo_streets", {"version": 1}, _fill)  # the other job's copy goes in first
        (root / "mask_written_by_the_other_job.png").write_bytes(b"in use")

    write_once(root, "demo_streets", {"version": 1}, fill_while_another_job_finishes_first)
    assert (root / "mask_written_by_the_other_job.png").read_bytes() == b"in use"  # not swapped away
    assert read_marker(root)["version"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # our own copy is gone, nothing else


def test_a_new_run_never_writes_into_a_live_or_resumable_run(tmp_path):
    import socket
    import subprocess
    import sys

    from cvexp.engine import rundir
    from cvexp.errors import RunDirError

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    rundir.refuse_unfinished_run_dir(run)  # nothing there yet
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    cases = [({"status": "running", "pid": os.getppid(), "host": host}, False, "in use by a running job"),
             ({"status": "running", "pid": 1234, "host": "another-node"}, False, "in use by a running job"),
             ({"status": "interrupted", "pid": int(dead), "host": host}, True, "resume="),
             ({"status": "running", "pid": int(dead), "host": host}, True, "resume=")]  # SIGKILLed
    for status, with_last, message in cases:
        (run / "status.json").write_text(json.dumps(status))
        (run / "checkpoints" / "last.ckpt").unlink(missing_ok=True)
        if with_last:
            (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
        with pytest.raises(RunDirError, match=message) as e:
            rundir.refuse_unfinished_run_dir(run)
        assert "\n" not in str(e.value)
    (run / "checkpoints" / "last.ckpt").unlink()
    for status in ({"status": "interrupted", "pid": int(dead), "host": host},  # nothing to resume
                   {"status": "failed", "pid": int(dead), "host": host},
                   {"status": "running", "pid": os.getpid(), "host": host}):  # this very process
        (run / "status.json").write_text(json.dumps(status))
        rundir.refuse_unfinished_run_dir(run)


def test_demo_data_modules_refuse_a_user_root(tmp_path):
    from cvexp.data.segmentation import DemoStreetsDataModule
    from cvexp.data.wildlife import DemoWildlifeDataModule

    user = tmp_path / "my_dataset"
    user.mkdir()
    (user / "keep.jpg").write_bytes(b"x")
    with pytest.raises(ConfigError, match="data.root is not used with demo data"):
        DemoWildlifeDataModule(cache_dir=str(tmp_path / "c"), root=str(user))
    with pytest.raises(ConfigError, match="data.root is not used with demo data"):
        DemoStreetsDataModule(cache_dir=str(tmp_path / "c"), root=str(user))
    assert (user / "keep.jpg").read_bytes() == b"x"


# --------------------------------------------------------------------------- checkpoints are data
def _stored_config():
    return {
        "model": {"_target_": "cvexp.models.convnet.ConvNet", "num_classes": 10},
        "task": {"_target_": "cvexp.tasks.classification.ClassificationModule"},
        "data": {"_target_": "cvexp.data.wildlife.DemoWildlifeDataModule", "cache_dir": "/tmp/x"},
        "aug": {"eval": [{"_target_": "albumentations.Resize", "height": 8, "width": 8}]},
        "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
        "trainer": {"_target_": "pytorch_lightning.Trainer"},
        "callbacks": {"ckpt": {"_target_": "pytorch_lightning.callbacks.ModelCheckpoint"}},
        "logger": {"csv": {"_target_": "pytorch_lightning.loggers.CSVLogger", "save_dir": "."}},
    }


def test_allow_list_accepts_what_cvexp_writes():
    from cvexp.io.checkpoint import check_targets

    check_targets(_stored_config())


@pytest.mark.parametrize("where,target", [
    ("model", "pathlib.Path.touch"),
    ("model", "os.system"),
    ("model", "builtins.eval"),
    ("data", "cvexp.data.cache.write_once"),       # a function inside an allowed package
    ("data", "cvexp.models.convnet.ConvNet"),      # a real cvexp class, in the wrong node
    ("aug", "albumentations.core.serialization.load"),
    ("optimizer", "subprocess.Popen"),
    ("model", "cvexp.models.convnet.ConvNet; import os"),
])
def test_allow_list_refuses_foreign_targets(where, target, tmp_path):
    from cvexp.io.checkpoint import check_targets

    cfg = _stored_config()
    if where == "aug":
        cfg["aug"]["eval"][0]["_target_"] = target
    else:
        cfg[where]["_target_"] = target
    with pytest.raises(CheckpointError, match="refused"):
        check_targets(cfg, "evil.ckpt")


def test_allow_list_refuses_targets_in_other_nodes_and_interpolations():
    from cvexp.io.checkpoint import check_targets

    cfg = _stored_config()
    cfg["extra"] = {"_target_": "os.system", "_args_": ["touch /tmp/pwned"]}
    with pytest.raises(CheckpointError, match="refused"):
        check_targets(cfg)
    cfg = _stored_config()
    cfg["model"]["_args_"] = ["x"]
    with pytest.raises(CheckpointError, match="refused"):
        check_targets(cfg)
    cfg = _stored_config()
    cfg["data"]["cache_dir"] = "${oc.env:HOME}"
    with pytest.raises(CheckpointError, match="interpolation"):
        check_targets(cfg)


def _fake_run_checkpoint(path, config):
    torch.save({"state_dict": {"w": torch.zeros(1)}, "cvexp": {"config": config, "class_names": ["a"]}}, path)


def test_load_run_checkpoint_refuses_code_before_building_anything(tmp_path):
    from cvexp.io.checkpoint import load_run_checkpoint

    victim = tmp_path / "created_by_checkpoint"
    cfg = _stored_config()
    cfg["model"] = {"_target_": "pathlib.Path.touch", "self": str(victim)}
    _fake_run_checkpoint(tmp_path / "evil.ckpt", cfg)
    with pytest.raises(CheckpointError, match="refused"):
        load_run_checkpoint(tmp_path / "evil.ckpt")
    assert not victim.exists()


def test_zip_bomb_checkpoint_is_refused_before_it_is_read(tmp_path, monkeypatch):
    import zipfile

    from cvexp.io import checkpoint
    from cvexp.io.checkpoint import load_state_dict_file

    torch.save({"w": torch.zeros(4)}, tmp_path / "ok.pt")
    with zipfile.ZipFile(tmp_path / "ok.pt") as src, \
            zipfile.ZipFile(tmp_path / "bomb.pt", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            big = info.filename.endswith("/data/0")
            dst.writestr(info.filename, b"\0" * (64 << 20) if big else src.read(info))
    assert (tmp_path / "bomb.pt").stat().st_size < 1 << 20
    monkeypatch.setattr(checkpoint.torch, "load", lambda *a, **k: pytest.fail("read a zip bomb"))
    with pytest.raises(CheckpointError, match="would inflate from 0.1 MB to 67 MB") as e:
        load_state_dict_file(tmp_path / "bomb.pt")
    assert "\n" not in str(e.value) and "bomb.pt" in str(e.value)
    monkeypatch.undo()
    assert torch.equal(load_state_dict_file(tmp_path / "ok.pt")["w"], torch.zeros(4))  # torch.save's own: fine


def test_pickled_code_is_never_run(tmp_path):
    from cvexp.io.checkpoint import load_run_checkpoint, load_state_dict_file

    victim = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {victim}",))

    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="pickled code"):
        load_run_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="pickled code"):
        load_state_dict_file(tmp_path / "evil.pt")
    assert not victim.exists()


def test_vainf_file_given_to_eval_says_how_to_use_it(tmp_path):
    from cvexp.io.checkpoint import load_run_checkpoint

    torch.save({"model_state": {"w": torch.zeros(1)}, "best_score": 0.7}, tmp_path / "best_deeplab.pth.tar")
    with pytest.raises(CheckpointError, match="model.weights=") as e:
        load_run_checkpoint(tmp_path / "best_deeplab.pth.tar")
    assert "DeepLabV3Plus-Pytorch" in str(e.value) and "\n" not in str(e.value)


# --------------------------------------------------------------------------- atomic writes
def test_checkpoint_write_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    from cvexp.io import atomic
    from cvexp.io.checkpoint import save_file

    target = tmp_path / "best.ckpt"
    save_file({"v": torch.ones(3)}, target)
    before = target.read_bytes()
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()

        def write(self, data):
            self.fh.write(bytes(data)[:10])  # a few bytes make it, then the disk is full
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="No space"):
        save_file({"v": torch.zeros(1000)}, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["best.ckpt"]  # no temporary left behind


def test_status_write_failure_never_hides_the_first_error(tmp_path, capsys):
    from cvexp.engine import entry

    out = tmp_path / "run"
    out.mkdir()
    (out / "status.json").mkdir()  # the status file cannot be replaced: writing it fails
    entry._write_status(out, {"status": "failed"})
    assert "could not update" in capsys.readouterr().err


def test_trainer_saves_checkpoints_atomically(compose_cfg, tmp_path):
    from cvexp.engine import build

    trainer = build.build_trainer(compose_cfg("train", ["logger=none", "callbacks=none"]))
    assert type(trainer.strategy.checkpoint_io).__name__ == "AtomicCheckpointIO"


# --------------------------------------------------------------------------- run and sweep dirs
def test_used_sweep_dir_is_refused(tmp_path):
    from cvexp.engine import rundir

    sweep = tmp_path / "sweep"
    rundir.refuse_used_sweep_dir(sweep)  # absent: fine
    (sweep / "0").mkdir(parents=True)
    rundir.refuse_used_sweep_dir(sweep)  # empty job dir: fine
    (sweep / "0" / "status.json").write_text(json.dumps({"status": "completed"}))
    with pytest.raises(RunDirError, match="already holds a sweep"):
        rundir.refuse_used_sweep_dir(sweep)


def test_unwritable_output_dirs(tmp_path):
    from cvexp.engine import rundir

    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        rundir.check_writable_dir(f / "run", "hydra.run.dir")
    rundir.check_writable_dir(tmp_path / "new" / "run", "hydra.run.dir")


# --------------------------------------------------------------------------- divergence
def test_nonfinite_loss_stops_with_one_line(compose_cfg):
    from cvexp.engine import build

    cfg = compose_cfg("train", [])

    module = build.build_task(cfg.task, net=build.build_model(cfg.model, 10), class_names=[str(i) for i in range(10)])
    module.on_before_backward(torch.tensor(1.0))
    module.check_finite("now")  # finite: nothing happens
    module.on_before_backward(torch.tensor(float("nan")))
    module.on_before_backward(torch.tensor(2.0))  # a later finite loss does not clear the flag
    with pytest.raises(DivergenceError, match="diverged") as e:
        module.check_finite("before validation")
    assert "\n" not in str(e.value) and "optimizer.lr" in str(e.value)
    with pytest.raises(DivergenceError):  # a diverged model is never saved
        module.on_save_checkpoint({})


def test_best_tracker_travels_with_the_checkpoint(compose_cfg):

    from cvexp.engine import build

    cfg = compose_cfg("train", [])
    names = [str(i) for i in range(10)]
    a = build.build_task(cfg.task, net=build.build_model(cfg.model, 10), class_names=names)
    a.val_f1_best.update(torch.tensor(0.75))
    ckpt = {}
    a.on_save_checkpoint(ckpt)
    b = build.build_task(cfg.task, net=build.build_model(cfg.model, 10), class_names=names)
    b.on_load_checkpoint(ckpt)
    assert float(b.val_f1_best.compute()) == pytest.approx(0.75)


# --------------------------------------------------------------------------- signals
def test_signal_outside_fit_interrupts_at_once_and_is_remembered():
    from cvexp.engine import signals

    signals.handle_stop_signals()
    try:
        with pytest.raises(signals.Interrupted):
            os.kill(os.getpid(), signal.SIGTERM)
        assert signals.received() == signal.SIGTERM
        assert signals.exit_code(signals.received()) == 143
    finally:
        signals.restore_signals()


def test_signal_during_fit_asks_lightning_to_stop_at_the_batch_boundary():
    from types import SimpleNamespace

    from cvexp.engine import signals

    trainer = SimpleNamespace(_signal_connector=SimpleNamespace(received_sigterm=False))
    signals.handle_stop_signals()
    try:
        with signals.deferred_to(trainer):
            os.kill(os.getpid(), signal.SIGINT)
            assert trainer._signal_connector.received_sigterm is True
            with pytest.raises(signals.Interrupted):  # a second Ctrl-C does not wait
                os.kill(os.getpid(), signal.SIGINT)
        assert signals.received() == signal.SIGINT
    finally:
        signals.restore_signals()


# --------------------------------------------------------------------------- config schemas
@pytest.mark.parametrize("override,key", [
    ("trainer.max_epochs=abc", "trainer.max_epochs"),
    ("data.batch_size=-1", "data.batch_size"),
    ("data.split=[0.5,0.6,0.2]", "data.split"),
    ("optimizer.lr=-1", "optimizer.lr"),
    ("data.image_size=0", "data.image_size"),
    ("trainer.accelerator=tpu9", "trainer.accelerator"),
    ("data.num_workers=1.5", "data.num_workers"),
])
def test_schema_rejects_bad_values_with_the_key(compose_cfg, override, key):
    from cvexp.engine.schema import validate

    cfg = compose_cfg("train", [override])
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    msg = str(e.value)
    assert msg.startswith(key + "=") and "\n" not in msg


def test_schema_missing_value(compose_cfg):
    from cvexp.engine.schema import validate

    cfg = compose_cfg("train", [])
    cfg.paths.cache_dir = "???"
    with pytest.raises(ConfigError, match=r"paths.cache_dir has no value"):
        validate(cfg)


@pytest.mark.parametrize("overrides", [[], ["experiment=seg_demo"], ["model=resnet18", "aug=strong"],
                                       ["experiment=idd_zero_shot_cityscapes"], ["debug=fast"]])
def test_schema_accepts_shipped_configs(compose_cfg, overrides):
    from cvexp.engine.schema import validate

    validate(compose_cfg("train", overrides))
    validate(compose_cfg("eval", ["ckpt_path=x.ckpt", *overrides[:0]]))


def test_truncated_jpeg_is_unreadable(tmp_path):
    import cv2
    import numpy as np

    from cvexp.data.images import is_readable_image

    img = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "ok.jpg"), img)
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert is_readable_image(tmp_path / "ok.jpg")
    assert not is_readable_image(tmp_path / "cut.jpg")


def test_resume_refuses_other_overrides_and_bad_dirs(tmp_path):
    from cvexp.engine import resume

    assert resume.prepare_argv(["model=resnet18"]) == ["model=resnet18"]  # no resume: untouched
    with pytest.raises(ConfigError, match="no such run directory"):
        resume.prepare_argv([f"resume={tmp_path / 'nope'}"])
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(OmegaConf.to_yaml({"seed": 1}))
    with pytest.raises(ConfigError, match="no checkpoints/last.ckpt"):
        resume.prepare_argv([f"resume={run}"])
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="only trainer.max_epochs"):
        resume.prepare_argv([f"resume={run}", "optimizer.lr=1"])
    argv = resume.prepare_argv([f"resume={run}", "trainer.max_epochs=5"])
    assert f"hydra.run.dir={run}" in argv and "trainer.max_epochs=5" in argv
    assert any(a.startswith("hydra.output_subdir=.hydra/resume-") for a in argv)
    (run / "status.json").write_text(json.dumps({"status": "running", "pid": os.getpid(),
                                                 "host": __import__("socket").gethostname()}))
    with pytest.raises(ConfigError, match="still running"):
        resume.prepare_argv([f"resume={run}"])
    (run / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match="has finished"):
        resume.prepare_argv([f"resume={run}"])


def test_eval_of_a_checkpoint_on_data_of_another_task_is_one_line():
    from types import SimpleNamespace

    from cvexp.eval import check_task

    module = SimpleNamespace(task="segmentation")
    with pytest.raises(CheckpointError, match="is a segmentation checkpoint but the data") as e:
        check_task(module, SimpleNamespace(task="classification"), "seg.ckpt")
    assert "\n" not in str(e.value)
    check_task(module, SimpleNamespace(task="segmentation"), "seg.ckpt")


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    """Not mkstemp's private 0600: a shared run directory stays readable by the group."""
    import os
    import stat

    from cvexp.io.atomic import atomic_write_bytes

    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "status.json", b"{}")
        plain = tmp_path / "plain.json"
        plain.write_bytes(b"{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "status.json").stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode) == 0o640


def test_a_run_never_writes_into_a_folder_of_someone_elses_files(tmp_path):
    from cvexp.engine import rundir
    from cvexp.errors import RunDirError

    rundir.refuse_foreign_dir(tmp_path / "new")  # absent: fine
    d = tmp_path / "thesis"
    d.mkdir()
    rundir.refuse_foreign_dir(d)  # empty: fine
    (d / ".hydra").mkdir()
    (d / "train.log").write_text("")  # what Hydra leaves of an invocation that stopped early
    rundir.refuse_foreign_dir(d)
    (d / "config.yaml").write_text("my: notes")
    (d / "report.md").write_text("# mine")
    with pytest.raises(RunDirError, match=r"holds files that are not a cvexp run \(config.yaml, report.md\)") as e:
        rundir.refuse_foreign_dir(d)
    assert "\n" not in str(e.value)
    (d / "study.json").write_text("{}")  # a cvexp study: the study runner decides
    rundir.refuse_foreign_dir(d)
    (d / "study.json").unlink()
    (d / "status.json").write_text("{}")  # a cvexp run: the other refusals decide
    rundir.refuse_foreign_dir(d)


def test_zero_epochs_is_refused_before_any_work(compose_cfg):
    from cvexp.train import train

    cfg = compose_cfg("train", ["trainer.max_epochs=0"])
    with pytest.raises(ConfigError, match="trainer.max_epochs=0 trains nothing") as e:
        train(cfg)
    assert "train=false" in str(e.value) and "\n" not in str(e.value)


def test_generated_demo_folders_get_the_usual_permissions(tmp_path):
    import stat

    from cvexp.data.cache import write_once

    old = os.umask(0o022)
    try:
        root = write_once(tmp_path / "cache", "demo_wildlife", {"version": 1}, _fill)
    finally:
        os.umask(old)
    assert stat.S_IMODE(root.stat().st_mode) == 0o755  # not mkdtemp's private 0700: a group can share it
