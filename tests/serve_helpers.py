"""Builders shared by the serving tests: an untrained tiny run directory and a live server on loopback."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from helpers import make_data_dir, planted_data

from pauserec.arms import make_arm
from pauserec.config import build_config
from pauserec.model.backbone import load_backbone
from pauserec.model.tiny import make_tiny_backbone
from pauserec.model.vocab import extend_vocabulary
from pauserec.prompt import PROMPT_LAYOUT
from pauserec.artifacts import RunDir


def make_tiny_run(root: Path, arm: str = "pause", pause_tokens: int = 2, max_history: int = 4) -> Path:
    """A run directory laid out as ``pauserec train`` writes it, with a tiny random (untrained) model.

    The planted dataset's items have titles ``Item number {i}`` and ids ``i{i}``; ``max_history`` is small so a
    test can exceed it.
    """
    dataset, catalog = planted_data()
    data_dir = make_data_dir(root / "data", dataset, catalog)
    cfg = build_config(overrides=[
        f"cache_dir={root / 'cache'}", f"arm.name={arm}",
        *([f"arm.pause_tokens={pause_tokens}"] if arm == "pause" else []),
        f"split.max_history={max_history}", "decode.num_beams=8", "eval.ks=[1,5]",
    ])
    run = RunDir.create(root / "run", cfg, kind=f"train:{arm}", data_dir=str(data_dir.resolve()),
                        dataset_hash=dataset.content_hash(), catalog_hash=catalog.content_hash(),
                        prompt_layout=PROMPT_LAYOUT)
    model, tokenizer = load_backbone(str(make_tiny_backbone(root / "backbone", hidden=32, layers=2)), cfg.cache_dir)
    extend_vocabulary(model, tokenizer, catalog.all_tokens() + make_arm(cfg).new_tokens(), noise_std=0.5)
    model.save_pretrained(run.file("model"))
    tokenizer.save_pretrained(run.file("model"))
    return run.path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a background thread (a context manager; stops on exit)."""

    def __init__(self, app, timeout_s: float = 20.0):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.timeout_s = timeout_s

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + self.timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=self.timeout_s)
