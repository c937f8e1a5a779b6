"""benchmarks/gpu_check.py, the one command for issue #20's GPU measurements, kept ready to run: it refuses
``--device cuda`` without CUDA with a clear message and exit status 2, and ``--device cpu --quick`` runs every part
end to end and writes its report; its parser of env_throughput.py's table is checked on a table of known numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402


def test_cuda_asked_for_and_absent_is_a_clear_exit_2(tmp_path: Path) -> None:
    # CUDA hidden from the script, so the refusal is checked on a GPU machine too
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert out.returncode == 2
    assert "no CUDA device: run with --device cpu to test the script" in out.stderr
    assert "Traceback" not in out.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_throughput_table_is_read_back_by_peer_and_copies() -> None:
    table = "\n".join([
        "# Environment throughput", "", "text", "",
        "| copies | thorndike native (torch eager) | thorndike native (compiled rollouts) "
        "| gymnax (jax jit + vmap + scan) | Gymnasium X | native / gymnax |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        "| 4,096 | 7,800,000 | — | 254,000,000 | — | 0.0x |",
        "| 65,536 | 139,000,000 | 3,000,000,000 | 2,990,000,000 | 1,000 | 0.0x |",
        "", "| env | steps/s |", "| --- | ---: |", "| Pendulum-v1 | 5 |",
    ])
    rates = gpu_check.parse_throughput_table(table)
    assert set(rates) == {"thorndike native (torch eager)", "thorndike native (compiled rollouts)",
                          "gymnax (jax jit + vmap + scan)", "Gymnasium X"}
    assert rates["thorndike native (torch eager)"] == {4096: 7.8e6, 65536: 1.39e8}
    assert rates["thorndike native (compiled rollouts)"] == {65536: 3e9}  # the empty cell is left out
    assert gpu_check.pick_peer(rates, "gymnax") == "gymnax (jax jit + vmap + scan)"
    lines = gpu_check.throughput_section({"rates": rates, "sizes": [4096, 65536], "notes": []}, "cuda")
    # eager / gymnax = 0.046, compiled / gymnax = 1.003; the goal is judged on the better native column
    assert "| 65,536 | 139,000,000 | 3,000,000,000 | 2,990,000,000 | 1,000 | 0.046 | 1.003 |" in lines
    assert "| 4,096 | 7,800,000 | — | 254,000,000 | — | 0.031 | — |" in lines
    assert any("Goal (native >= gymnax at 65,536 copies): met (best native column: thorndike native (compiled "
               "rollouts), 1.003 of gymnax)" in line for line in lines)


def test_quick_cpu_run_writes_every_part(tmp_path: Path) -> None:
    assert gpu_check.main(["--device", "cpu", "--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check_cpu_quick.json").read_text())
    text = (tmp_path / "gpu_check_cpu_quick.md").read_text()
    native = gpu_check.pick_peer(report["throughput"]["rates"], gpu_check.NATIVE_PEER)
    assert native is not None and {int(n) for n in report["throughput"]["rates"][native]} == set(gpu_check.QUICK_SIZES)
    labels = {(run["task"], run["label"]) for run in report["ppo"]}
    assert labels == {("CartPole-v1", "CPU fast config on cpu"), ("CartPole-v1", "GPU config on cpu"),
                      ("Pendulum-v1", "CPU tuned config (ppo.yaml) on cpu"), ("Pendulum-v1", "GPU config on cpu")}
    assert all(run["steps_run"] > 0 and run["time_to_solve_s"] > 0 for run in report["ppo"])
    assert report["versions"]["torch"] == torch.__version__
    for heading in ("## (a)", "## (b)", "## (c)"):
        assert heading in text
