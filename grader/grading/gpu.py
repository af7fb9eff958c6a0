"""GPU bookkeeping for batch grading: how many GPUs, and who holds GPU memory."""

import shutil
import subprocess

import torch


def count() -> int:
    """Number of CUDA devices visible to this process (0 without a GPU)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def compute_processes() -> dict[int, int]:
    """``{pid: MiB}`` of the processes holding GPU memory, from ``nvidia-smi`` ({} if unknown)."""
    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    held: dict[int, int] = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit():
            held[int(parts[0])] = int(parts[1]) if parts[1].isdigit() else 0
    return held
