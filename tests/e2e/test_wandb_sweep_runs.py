"""W&B as a dashboard: one run per job of a sweep (named after its overrides, grouped by sweep,
job_type train/eval), the learning rate per step whenever a logger is on, the task's pictures (e.g.
segmentation panels) and the sweep report sent to the loggers. W&B runs offline (conftest)."""

from pathlib import Path

import pytest
from conftest import run_cli



def wandb_records(path: Path):
    """The records of an offline run file (`run-<id>.wandb`): W&B's LevelDB-style log of protobufs
    (7-byte header, 32 KiB blocks, chunks FULL=1 FIRST=2 MIDDLE=3 LAST=4)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0:
            continue
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            yield rec


def read_offline_run(run_dir: Path) -> dict:
    """{id, name, group, job_type, keys (every history key)} of one offline-run-* folder."""
    (f,) = run_dir.glob("run-*.wandb")
    out = {"keys": set()}
    for rec in wandb_records(f):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out.update(id=rec.run.run_id, name=rec.run.display_name, group=rec.run.run_group,
                       job_type=rec.run.job_type)
        elif kind == "history":
            out["keys"] |= {it.key or "/".join(it.nested_key) for it in rec.history.item}
    return out


@pytest.mark.slow
def test_each_job_of_a_wandb_sweep_is_its_own_run(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli(["-m", "cvexp", "-m", "debug=fast", "data.n_images=200", "data.image_size=32", "logger=wandb",
                 "callbacks.progress_bar=null", "trainer.log_every_n_steps=1", "seed=0,1",
                 f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = [read_offline_run(d) for j in ("0", "1") for d in (sweep / j / "wandb").glob("offline-run-*")]
    assert len(runs) == 2, "each job has its own offline run folder"
    assert runs[0]["id"] != runs[1]["id"]
    assert [x["name"] for x in runs] == ["seed=0", "seed=1"]  # what the job varies
    assert {x["group"] for x in runs} == {"sweep"} and {x["job_type"] for x in runs} == {"train"}
    for x in runs:
        assert "lr-Adam" in x["keys"] and "test/confusion_matrix/_type" in x["keys"] and "test/acc" in x["keys"]
    (rep,) = [read_offline_run(d) for d in (sweep / "wandb").glob("offline-run-*")]
    assert rep["job_type"] == "sweep_report" and rep["group"] == "sweep" and "sweep/report/_type" in rep["keys"]
    assert rep["id"] not in {x["id"] for x in runs}
