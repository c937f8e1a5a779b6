"""benchmarks/faults.py, the fault campaign, kept from rotting: its children report hangs, deaths and results; its
judges tell a bit-identical resume from lost or changed rows and a clear refusal from a silent acceptance; and one
real case of each main kind (a SIGKILL, a damaged checkpoint, bad config values) runs end to end."""

from __future__ import annotations

import csv
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from thorndike.core.checkpoint import load_checkpoint, save_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import faults  # noqa: E402

faults.preload(__name__)  # the jobs below, imported once by the fork server rather than by every child


def sleep_job(seconds: float, note: Any) -> dict:
    time.sleep(seconds)
    return {"slept": seconds}


def kill_job(_: Any, note: Any) -> dict:
    faults._die()
    return {}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> faults.Reference:
    return faults.make_reference("q_learning", tmp_path_factory.mktemp("faults"))


def test_children_report_results_hangs_and_deaths() -> None:
    # 5 s: a child that does nothing must report within it even on a machine loaded by other jobs
    results = faults.run_batch(sleep_job, [0.0, 60.0, 0.0], timeout=5.0)
    assert [r["status"] for r in results] == ["done", "timeout", "done"]
    assert results[2]["slept"] == 0.0
    assert faults.run_one(kill_job, None)["status"] == "killed"


def copy_run(run_dir: Path, to: Path) -> Path:
    return Path(shutil.copytree(run_dir, to / run_dir.name))


def test_judge_run_tells_identical_from_lost_and_changed(reference: faults.Reference, tmp_path: Path) -> None:
    same = copy_run(reference.run_dir, tmp_path / "same")
    assert faults.judge_run(same, reference.run_dir)[0] == "ok"

    lost = copy_run(reference.run_dir, tmp_path / "lost")
    lines = (lost / "progress.csv").read_text().splitlines(keepends=True)
    (lost / "progress.csv").write_text("".join(lines[:3] + lines[4:]))
    verdict, detail = faults.judge_run(lost, reference.run_dir)
    assert verdict == "lost rows" and "1 of" in detail

    changed = copy_run(reference.run_dir, tmp_path / "changed")
    state = load_checkpoint(changed / "final.pt")
    q = state["components"]["tables"]["tensors"]["q"]
    q.view(-1)[0] += 1e-6
    save_checkpoint(state, changed / "final.pt")
    assert faults.judge_run(changed, reference.run_dir) == ("not identical", "final.pt: components differ")

    with open(changed / "progress.csv", newline="") as f:
        rows = list(csv.reader(f))
    rows.append(rows[-1])  # a duplicated row
    with open(changed / "progress.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    assert faults.judge_run(changed, reference.run_dir) == ("not identical", "progress.csv: 1 extra row(s)")


def done(stage: str, **result: Any) -> dict:
    return {"status": "done", "notes": ["constructed"] if stage != "construction" else [], "stage": stage, **result}


def test_judge_fuzz_classifies_every_way_a_bad_value_can_end() -> None:
    case = {"surface": "api", "algo": "ppo", "field": "n_envs", "value": -1, "surely": True}
    named = {"type": "ConfigError", "message": "invalid config: n_envs=-1; n_envs must be >= 1", "clear": True,
             "origin": "config.py:1"}
    assert faults.judge_fuzz(case, done("construction", error=named))[0] == "ok"
    unnamed = {**named, "message": "something is wrong"}
    assert faults.judge_fuzz(case, done("construction", error=unnamed))[0] == "traceback"
    raw = {"type": "RuntimeError", "message": "can't allocate memory", "clear": False, "origin": "ppo.py:1"}
    assert faults.judge_fuzz(case, done("construction", error=raw))[0] == "traceback"
    assert faults.judge_fuzz(case, done("finished", finite=True))[0] == "silently accepted"
    assert faults.judge_fuzz(case, {"status": "timeout", "notes": ["constructed"]})[0] == "hang"
    huge = {**case, "value": 10**12, "surely": False}
    assert faults.judge_fuzz(huge, done("finished", finite=True))[0] == "ok"  # a usable value, used
    assert faults.judge_fuzz(huge, done("finished", finite=False))[0] == "silently accepted"


def test_a_kill_a_damaged_checkpoint_and_bad_values_run_end_to_end(reference: faults.Reference,
                                                                     tmp_path: Path) -> None:
    rng = random.Random(0)
    case = faults.kill_case(reference, "SIGKILL in checkpoint write", rng, tmp_path / "kill")
    assert case.outcome == "ok", case
    assert "killed" in case.case and "bit-identical" in case.detail

    job, run_dir, damaged = faults.prepare_damage(reference, "checkpoint truncated", rng, tmp_path)
    result = faults.run_one(faults.resume_job, job)
    assert faults.judge_damage(reference, "checkpoint truncated", job, run_dir, damaged, result)[0] == "ok"

    fuzz = [c for c in faults.fuzz_cases(("q_learning",), tmp_path)
            if (c["field"], c["surface"]) in {("alpha", "api"), ("seed", "api")} and c["value"] in ("fast", 2**70)]
    assert len(fuzz) == 2
    for c, result in zip(fuzz, faults.run_batch(faults.fuzz_job, fuzz), strict=True):
        verdict, detail = faults.judge_fuzz(c, result)
        assert verdict == "ok" and c["field"] in detail, (c, result)
