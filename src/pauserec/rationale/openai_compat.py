"""``openai`` rationales: any OpenAI-compatible chat-completions server (vLLM, llama.cpp server, Ollama, ...).

Requests go out with bounded concurrency (a thread pool of ``concurrency`` workers); timeouts and retries with
exponential back-off are the official ``openai`` client's own (``timeout``, ``max_retries``). The server is probed
once first, so an unreachable address is one clear line, not a traceback per request.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import PauseRecError
from .base import RationaleRequest


class ProviderUnreachable(PauseRecError):
    """The rationale server could not be reached or refused the requests."""


class OpenAIProvider:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str,
        max_new_tokens: int,
        temperature: float,
        concurrency: int,
        timeout_s: float,
        retries: int,
    ):
        self.base_url, self.model, self.api_key_env = base_url, model, api_key_env
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.concurrency, self.timeout_s, self.retries = concurrency, timeout_s, retries

    def settings(self) -> dict[str, Any]:
        # the address is not part of the output's identity: the same model served elsewhere answers the same
        return {"provider": "openai", "model": self.model, "max_new_tokens": self.max_new_tokens,
                "temperature": self.temperature}

    def _client(self, retries: int):
        from openai import OpenAI

        key = os.environ.get(self.api_key_env) or "not-needed"  # local servers accept any key
        return OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout_s, max_retries=retries)

    def check_reachable(self) -> None:
        """One quick request (no retries): a clear error if nothing answers at ``base_url``."""
        import openai

        try:
            self._client(retries=0).models.list()
        except openai.APIConnectionError as e:
            raise ProviderUnreachable(f"no OpenAI-compatible server answers at {self.base_url} ({e})") from None
        except openai.APIStatusError as e:
            raise ProviderUnreachable(f"the server at {self.base_url} refused: HTTP {e.status_code}") from None

    def generate(self, requests: Sequence[RationaleRequest], progress: bool = False) -> list[str]:
        import openai

        if not requests:
            return []
        self.check_reachable()
        client = self._client(self.retries)

        def one(request: RationaleRequest) -> str:
            reply = client.chat.completions.create(
                model=self.model,
                messages=request.messages(),
                max_tokens=self.max_new_tokens,
                temperature=self.temperature,
            )
            return reply.choices[0].message.content or ""

        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(requests), unit="rationale", desc=f"openai {self.model}")
        out: list[str] = []
        try:
            with ThreadPoolExecutor(self.concurrency) as pool:
                for text in pool.map(one, requests):
                    out.append(text)
                    if bar is not None:
                        bar.update(1)
        except openai.APIConnectionError as e:
            raise ProviderUnreachable(f"lost the server at {self.base_url} after retries ({e})") from None
        except openai.APIStatusError as e:
            raise ProviderUnreachable(f"the server at {self.base_url} answered HTTP {e.status_code}: {e.message}") from None
        finally:
            if bar is not None:
                bar.close()
        return out
