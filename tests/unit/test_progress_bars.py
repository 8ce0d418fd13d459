"""Progress bars of the slow loops (cvexp/io/progress.py): demo data generation and feature extraction
show one when there is enough work, none otherwise (as mask rasterisation does: tests/test_idd.py);
drawn on a terminal, nothing written into a pipe or file."""

from __future__ import annotations

import io

import pytest
import torch

from cvexp.io import progress as P


@pytest.fixture
def bars(monkeypatch):
    """Every bar asked for, as (description, total), instead of drawing it."""
    import rich.progress

    calls = []

    def track(items, **kw):
        calls.append((kw["description"], kw["total"]))
        yield from items

    monkeypatch.setattr(rich.progress, "track", track)
    return calls


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False])
def test_a_bar_is_drawn_on_a_terminal_and_nothing_is_written_elsewhere(monkeypatch, terminal):
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    err = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    assert list(P.progress(range(20), 20, "counting sheep")) == list(range(20))
    assert ("counting sheep" in err.getvalue()) is terminal
    assert terminal or err.getvalue() == ""


def test_no_bar_for_little_or_unknown_work(bars):
    assert list(P.progress(iter(range(3)), 3, "few")) == [0, 1, 2]
    assert list(P.progress(iter(range(P.PROGRESS_MIN)), P.PROGRESS_MIN, "few")) == list(range(P.PROGRESS_MIN))
    assert list(P.progress(iter(range(20)), None, "unknown length")) == list(range(20))
    assert not bars
    assert list(P.progress(iter(range(9)), 9, "many")) == list(range(9)) and bars == [("many", 9)]


def test_demo_wildlife_shows_a_bar_while_writing_only(tmp_path, bars):
    from cvexp.data.demo_wildlife import class_counts, write_demo_wildlife

    root = write_demo_wildlife(tmp_path / "wildlife", n_images=50, seed=3)
    n = sum(class_counts(50).values())
    assert bars == [("demo wildlife images", n)] and len(list(root.rglob("*.jpg"))) == n
    write_demo_wildlife(tmp_path / "wildlife", n_images=50, seed=3)  # in place already: nothing to do
    assert len(bars) == 1


def test_demo_streets_shows_a_bar_for_more_than_a_few_scenes(tmp_path, bars):
    from cvexp.data.demo_streets import write_demo_streets

    # 2 layouts x (3 + 1) scenes = PROGRESS_MIN: no bar
    write_demo_streets(tmp_path / "few", n_train=3, n_val=1, width=64, height=32)
    assert not bars
    root = write_demo_streets(tmp_path / "more", n_train=4, n_val=1, width=64, height=32)
    assert bars == [("demo street scenes", 10)] and len(list(root.rglob("*_leftImg8bit.png"))) == 10
    write_demo_streets(tmp_path / "more", n_train=4, n_val=1, width=64, height=32)  # cached
    assert len(bars) == 1


class _Images(torch.utils.data.Dataset):
    def __init__(self, n: int):
        self.x, self.labels = torch.randn(n, 3, 16, 16), [i % 2 for i in range(n)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.x[i], self.labels[i]

    def path(self, i: int) -> str:
        return f"img_{i}.jpg"


class _DataModule:
    batch_size, num_workers = 1, 0

    def __init__(self, n: int):
        self.ds = _Images(n)

    def dataset(self, split: str, augment: bool = False):
        return self.ds


def test_feature_extraction_shows_a_bar_for_many_batches(bars):
    from cvexp.analysis.features import extract_split
    from cvexp.models.convnet import ConvNet

    net = ConvNet(num_classes=2, input_size=16)
    fs = extract_split(net, _DataModule(4), "val", device="cpu")  # 4 batches of 1: no bar
    assert len(fs) == 4 and not bars
    fs = extract_split(net, _DataModule(12), "val", device="cpu")
    assert len(fs) == 12 and bars == [("features (val)", 12)]
    extract_split(net, _DataModule(12), "val", device="cpu", batch_size=4)  # 3 batches: no bar
    assert len(bars) == 1
