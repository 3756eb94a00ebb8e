"""The one module that imports litellm: the Router built from the catalog, the offline provider, costs.

Why the portal walks the fallback list itself instead of handing litellm a `fallbacks=` list: before any
byte goes to a model the egress seal must be checked for that model, and each attempt gets its own usage
row and audit event. So litellm's Router owns everything *within* one deployment (retries with backoff
that honour Retry-After, the per-model timeout, the HTTP clients) and `services.model_stream` owns the
order of deployments. Cooldowns are kept here too (`Cooldowns`): litellm 1.82 never cools down a model
group that has a single deployment, and every catalog model is its own group.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from portal import offline as _privacy  # noqa: F401  (LITELLM_LOCAL_MODEL_COST_MAP before litellm loads)

import litellm  # noqa: E402  isort: skip
from litellm import CustomLLM  # noqa: E402  isort: skip
from litellm import Router as Router  # noqa: E402  isort: skip  (re-exported: services name its type)
from litellm.types.router import RetryPolicy  # noqa: E402  isort: skip
from litellm.utils import custom_llm_setup  # noqa: E402  isort: skip

from portal.routing.offline import OFFLINE_LABEL, extractive_answer  # noqa: E402
from portal.routing.types import OFFLINE_KEY  # noqa: E402

# No telemetry, no callbacks, no prompts in logs: the only traffic is the prompt to the chosen endpoint.
litellm.telemetry = False
litellm.suppress_debug_info = True
litellm.turn_off_message_logging = True
litellm.drop_params = True
litellm.callbacks = []
litellm.success_callback = []
litellm.failure_callback = []
litellm.set_verbose = False
# Token counting for llama / command-r names would download their tokenizers from huggingface.co.
litellm.disable_hf_tokenizer_download = True
# litellm's own log lines can carry provider error bodies (some echo part of the key) and request details;
# the portal logs each failure itself (model key and error class only) and keeps the rest in usage rows.
for _logger_name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
    logging.getLogger(_logger_name).setLevel(logging.CRITICAL)
logger = logging.getLogger(__name__)

OFFLINE_PROVIDER_NAME = "portal-offline"
OFFLINE_LABEL_KEY = "portal_offline_label"  # request metadata: why the offline model is answering
OFFLINE_MODEL_STRING = f"{OFFLINE_PROVIDER_NAME}/extractive"
OFFLINE_DISPLAY_NAME = "Offline extractive model (built in)"
OFFLINE_WORD_DELAY = 0.0  # the offline model streams as fast as it can
ERROR_STREAM_CUT = "The model's answer stream ended before it finished."
ERROR_EMPTY = "The model sent no answer."


# ---- the offline model as a litellm custom provider ---------------------------------------------------
def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _messages_text(messages: Sequence[dict[str, Any]]) -> str:
    return "\n".join(str(message.get("content") or "") for message in messages)


def _words(text: str) -> Iterator[str]:
    pieces = text.split(" ")
    for index, piece in enumerate(pieces):
        yield piece if index == len(pieces) - 1 else piece + " "


class OfflineLLM(CustomLLM):
    """Extractive answers from the prompt's passages; runs in-process, nothing leaves the server."""

    def _answer(self, messages: list[dict[str, Any]], litellm_params: Any) -> tuple[str, dict[str, int]]:
        metadata = (litellm_params or {}).get("metadata") or {}
        text = extractive_answer(messages, metadata.get(OFFLINE_LABEL_KEY) or OFFLINE_LABEL)
        prompt_tokens = _estimate_tokens(_messages_text(messages))
        completion_tokens = _estimate_tokens(text)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return text, usage

    def completion(self, *args: Any, **kwargs: Any) -> Any:
        text, usage = self._answer(kwargs["messages"], kwargs.get("litellm_params"))
        return litellm.ModelResponse(
            model=OFFLINE_MODEL_STRING,
            choices=[{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            usage=usage,
        )

    async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
        # the ranking embeds sentences (a few hundred ms of CPU): in a thread, never on the event loop
        return await asyncio.to_thread(self.completion, *args, **kwargs)

    def _chunks(self, messages: list[dict[str, Any]], litellm_params: Any) -> Iterator[Any]:
        yield from self._answer_chunks(*self._answer(messages, litellm_params))

    @staticmethod
    def _answer_chunks(text: str, usage: dict[str, int]) -> Iterator[Any]:
        for word in _words(text):
            yield {"text": word, "is_finished": False, "finish_reason": "", "usage": None, "index": 0}
        yield {"text": "", "is_finished": True, "finish_reason": "stop", "usage": usage, "index": 0}

    def streaming(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        yield from self._chunks(kwargs["messages"], kwargs.get("litellm_params"))

    async def astreaming(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        # the answer is ranked in a thread so that other readers' streams go on meanwhile
        text, usage = await asyncio.to_thread(self._answer, kwargs["messages"], kwargs.get("litellm_params"))
        for chunk in self._answer_chunks(text, usage):
            yield chunk


_offline_handler = OfflineLLM()
if not any(entry.get("provider") == OFFLINE_PROVIDER_NAME for entry in litellm.custom_provider_map):
    litellm.custom_provider_map.append({"provider": OFFLINE_PROVIDER_NAME, "custom_handler": _offline_handler})
custom_llm_setup()


# ---- deployments -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Deployment:
    """What the router needs of one catalog row (no key: only the name of the variable that holds it)."""

    key: str
    display_name: str
    provider: str
    litellm_model: str
    api_base: str = ""
    api_key_env: str = ""
    timeout_seconds: float = 60.0
    input_price_per_million: Decimal | None = None
    output_price_per_million: Decimal | None = None


OFFLINE_DEPLOYMENT = Deployment(
    key=OFFLINE_KEY,
    display_name=OFFLINE_DISPLAY_NAME,
    provider="offline",
    litellm_model=OFFLINE_MODEL_STRING,
    timeout_seconds=30.0,
    input_price_per_million=Decimal(0),
    output_price_per_million=Decimal(0),
)


def _litellm_params(deployment: Deployment) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": deployment.litellm_model,
        "timeout": deployment.timeout_seconds,
        "stream_timeout": deployment.timeout_seconds,
        "max_retries": 0,  # retries are the Router's, so Retry-After and backoff are handled in one place
    }
    if deployment.api_base:
        params["api_base"] = deployment.api_base
    if deployment.api_key_env:
        # Read from the environment now; it lives only in this process's memory, never in the database.
        params["api_key"] = os.environ.get(deployment.api_key_env, "") or "missing-key"
    elif deployment.key != OFFLINE_KEY:
        params["api_key"] = "no-key-configured"  # keeps litellm from looking up provider variables itself
    return params


def _fingerprint(deployments: Sequence[Deployment], settings_key: tuple[Any, ...]) -> str:
    digest = hashlib.sha256(repr(settings_key).encode())
    for deployment in deployments:
        digest.update(repr(deployment).encode())
        if deployment.api_key_env:
            # A rotated key rebuilds the router; only a hash of it takes part in the comparison.
            digest.update(hashlib.sha256(os.environ.get(deployment.api_key_env, "").encode()).digest())
    return digest.hexdigest()


class _RouterCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fingerprint = ""
        self._router: Router | None = None
        self.builds = 0

    def get(self, deployments: Sequence[Deployment], *, num_retries: int, retry_min_seconds: int) -> Router:
        everything = [*deployments, OFFLINE_DEPLOYMENT]
        fingerprint = _fingerprint(everything, (num_retries, retry_min_seconds))
        with self._lock:
            if self._router is None or fingerprint != self._fingerprint:
                if self._router is not None:
                    _discard_callbacks_of(self._router)
                self._router = Router(
                    model_list=[
                        {"model_name": deployment.key, "litellm_params": _litellm_params(deployment)}
                        for deployment in everything
                    ],
                    num_retries=num_retries,
                    # A timeout already cost the model's whole time budget: retrying it doubles the wait
                    # before the fallback answers. Bad requests and bad keys fail the same way every time.
                    retry_policy=RetryPolicy(
                        TimeoutErrorRetries=0, BadRequestErrorRetries=0, AuthenticationErrorRetries=0
                    ),
                    retry_after=retry_min_seconds,
                    disable_cooldowns=True,  # see the module docstring: Cooldowns below
                    set_verbose=False,
                )
                self._fingerprint = fingerprint
                self.builds += 1
            return self._router

    def clear(self) -> None:
        with self._lock:
            if self._router is not None:
                _discard_callbacks_of(self._router)
            self._router = None
            self._fingerprint = ""


_CALLBACK_LISTS = (
    "callbacks", "success_callback", "failure_callback", "_async_success_callback", "_async_failure_callback",
    "input_callback", "service_callback",
)  # fmt: skip


def _discard_callbacks_of(router: Router) -> None:
    """A Router registers its bound methods in litellm's global callback lists; a replaced one must leave."""
    for name in _CALLBACK_LISTS:
        registered = getattr(litellm, name, None)
        if isinstance(registered, list):
            registered[:] = [item for item in registered if getattr(item, "__self__", None) is not router]


router_cache = _RouterCache()


async def release_loop_clients() -> int:
    """Close the HTTP clients litellm cached for the running event loop, and forget them.

    litellm keeps one client per provider and event loop (the loop's id is part of the cache key) and never
    closes one it evicts. A long-lived loop (the web server's) keeps reusing its clients; a loop made for one
    synchronous call (a Celery task) must release them when it ends, or every call leaves an aiohttp session
    behind, logged as "Unclosed client session" once 200 of them push each other out of the cache.
    """
    cache = getattr(litellm, "in_memory_llm_clients_cache", None)
    entries = getattr(cache, "cache_dict", None)
    if cache is None or not isinstance(entries, dict):
        return 0
    suffix = f"-{id(asyncio.get_running_loop())}"
    mine = [key for key in list(entries) if isinstance(key, str) and key.endswith(suffix)]
    for key in mine:
        client = entries.get(key)
        cache.delete_cache(key)
        close = getattr(client, "aclose", None) or getattr(client, "close", None)
        if close is None or not asyncio.iscoroutinefunction(close):
            continue
        try:
            await close()
        except Exception:  # noqa: BLE001 - a client that fails to close must not fail the call it served
            logger.debug("routing: closing a cached HTTP client failed", exc_info=True)
    return len(mine)


class Cooldowns:
    """Models that just failed are skipped for a while, so one broken provider does not slow every answer."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def start(self, key: str, seconds: float) -> None:
        if key == OFFLINE_KEY or seconds <= 0:
            return
        with self._lock:
            self._until[key] = time.monotonic() + seconds

    def remaining(self, key: str) -> float:
        with self._lock:
            until = self._until.get(key)
            if until is None:
                return 0.0
            left = until - time.monotonic()
            if left <= 0:
                del self._until[key]
                return 0.0
            return left

    def clear(self) -> None:
        with self._lock:
            self._until.clear()


cooldowns = Cooldowns()


# ---- one streamed attempt --------------------------------------------------------------------------
@dataclass
class AttemptResult:
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_estimated: bool = False
    finish_reason: str | None = None
    text_chars: int = 0
    chunks: int = 0
    first_token_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class StreamCut(Exception):
    """The provider's stream ended without a finish reason (cut connection, protocol error, bad body)."""


def _provider_stream(response: Any) -> Any:
    """The litellm stream wrapper that saw the provider's own chunks.

    litellm ends a stream that stopped early (cut connection, body that is not a stream) with a made-up
    "stop" chunk, so the chunks we receive cannot tell a finished answer from a cut one. The inner
    wrapper remembers whether the provider itself sent a finish reason. The Router (1.82) hides it inside
    a fallback wrapper's generator, read here before iteration starts (the frame is gone afterwards).
    """
    generator = getattr(response, "_async_generator", None)
    frame = getattr(generator, "ag_frame", None)
    inner = frame.f_locals.get("model_response") if frame is not None else None
    return inner if inner is not None and hasattr(inner, "received_finish_reason") else response


async def stream_attempt(
    router: Router,
    deployment: Deployment,
    *,
    messages: list[dict[str, str]],
    temperature: float,
    max_tokens: int,
    result: AttemptResult,
    offline_label: str = "",
) -> AsyncIterator[str]:
    """Yield text pieces of one deployment's answer; fill `result`; raise on any failure."""
    extra: dict[str, Any] = {}
    if deployment.key == OFFLINE_KEY and offline_label:
        extra["metadata"] = {OFFLINE_LABEL_KEY: offline_label}
    response = await router.acompletion(  # type: ignore[call-overload]
        model=deployment.key,
        messages=messages,
        temperature=temperature,
        max_tokens=max_tokens,
        stream=True,
        stream_options={"include_usage": True},
        **extra,
    )
    provider_stream = _provider_stream(response)
    async for chunk in response:
        choices = getattr(chunk, "choices", None) or []
        if choices:
            delta = getattr(choices[0], "delta", None)
            text = getattr(delta, "content", None) if delta is not None else None
            if text:
                if result.first_token_at is None:
                    result.first_token_at = time.perf_counter()
                result.text_chars += len(text)
                result.chunks += 1
                yield text
        usage = getattr(chunk, "usage", None)
        if usage:
            result.tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
            result.tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
    result.finish_reason = getattr(provider_stream, "received_finish_reason", None)
    if result.finish_reason is None:
        raise StreamCut(ERROR_EMPTY if result.text_chars == 0 else ERROR_STREAM_CUT)
    if result.text_chars == 0:
        raise StreamCut(ERROR_EMPTY)
    if not result.tokens_out:
        result.tokens_estimated = True
        result.tokens_in = result.tokens_in or _estimate_tokens(_messages_text(messages))
        result.tokens_out = max(1, result.text_chars // 4)


def attempt_cost(deployment: Deployment, tokens_in: int, tokens_out: int) -> tuple[Decimal, str]:
    """Cost of one attempt: the catalog's override, else litellm's bundled (local) price map."""
    if deployment.key == OFFLINE_KEY:
        return Decimal(0), "local"
    if deployment.input_price_per_million is not None or deployment.output_price_per_million is not None:
        per_in = deployment.input_price_per_million or Decimal(0)
        per_out = deployment.output_price_per_million or Decimal(0)
        cost = (per_in * tokens_in + per_out * tokens_out) / Decimal(1_000_000)
        return cost.quantize(Decimal("0.00000001")), "catalog"
    try:
        # raises for a model the price map does not know; the Router registers catalog models without prices
        info = litellm.get_model_info(deployment.litellm_model)
        if not (info.get("input_cost_per_token") or info.get("output_cost_per_token")):
            return Decimal(0), "unknown"
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=deployment.litellm_model, prompt_tokens=tokens_in, completion_tokens=tokens_out
        )
    except Exception:  # unknown model in the price map: recorded as unknown, not guessed
        return Decimal(0), "unknown"
    return Decimal(str(prompt_cost + completion_cost)).quantize(Decimal("0.00000001")), "litellm"


ERROR_MESSAGES: dict[str, str] = {
    "RateLimitError": "the provider is rate limiting requests",
    "Timeout": "the provider did not answer in time",
    "APIConnectionError": "the provider could not be reached",
    "InternalServerError": "the provider had an internal error",
    "ServiceUnavailableError": "the provider is unavailable",
    "AuthenticationError": "the provider refused the API key",
    "StreamCut": "the answer stream was cut off",
    "MidStreamFallbackError": "the answer stream was cut off",
    "APIError": "the provider returned an invalid response",
    "BadRequestError": "the provider rejected the request",
    "PermissionError": "the prompt was not cleared for this model",
}


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 10:
        yield current
        current = current.__cause__ or current.__context__
        seen += 1


def describe_error(error: BaseException) -> tuple[str, str]:
    """(error class, short user-facing description). Never includes request data or keys."""
    name = type(error).__name__
    if isinstance(error, litellm.exceptions.Timeout):
        name = "Timeout"
    elif any(isinstance(cause, (ConnectionError, httpx.ConnectError)) for cause in _causes(error)):
        name = "APIConnectionError"  # litellm reports a refused connection as a 500
    return name, ERROR_MESSAGES.get(name, "the call failed")


# ---- a direct litellm call, for the overhead benchmark -----------------------------------------------
async def direct_stream(
    deployment: Deployment, *, messages: list[dict[str, str]], max_tokens: int = 200
) -> tuple[str, float | None]:
    """The same call without the Router: (text, perf_counter() at the first text piece)."""
    params = _litellm_params(deployment)
    response = await litellm.acompletion(
        messages=messages, max_tokens=max_tokens, stream=True, stream_options={"include_usage": True}, **params
    )
    pieces: list[str] = []
    first_at: float | None = None
    async for chunk in response:
        if chunk.choices and chunk.choices[0].delta.content:
            if first_at is None:
                first_at = time.perf_counter()
            pieces.append(chunk.choices[0].delta.content)
    return "".join(pieces), first_at
