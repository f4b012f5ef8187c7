"""Run a tiny training in its own process, to be killed: ``python crash_child.py CONFIG DATA RUN STALL_AT READY``.

At the end of step ``STALL_AT`` it writes the file ``READY`` and waits there until it is killed, so the parent
kills it at a known point (after a checkpoint, mid-way to the next) instead of racing a fast tiny model.
Single-threaded, like the parent's runs, so that every float sum is the same in both processes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from pauserec.config import config_from_yaml
from pauserec.train import trainer as trainer_module
from pauserec.train.run import train


def main(config: str, data_dir: str, run_dir: str, stall_at: str, ready: str) -> None:
    torch.set_num_threads(1)
    original = trainer_module.EvaluateAtEnd.on_step_end

    def stall(self, args, state, control, **kwargs):
        if state.global_step == int(stall_at):
            Path(ready).write_text(str(state.global_step))
            while True:
                time.sleep(1)
        return original(self, args, state, control, **kwargs)

    trainer_module.EvaluateAtEnd.on_step_end = stall
    train(config_from_yaml(config), data_dir, run_dir)


if __name__ == "__main__":
    main(*sys.argv[1:])
