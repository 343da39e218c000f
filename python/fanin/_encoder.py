"""fanin.SentenceEncoder: sentence embeddings shaped like sentence-transformers."""

from __future__ import annotations

import concurrent.futures
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _fanin, _requests
from ._engine import _Front, make_options
from ._fanin import EngineOptions

Texts = Union[str, bytes, Sequence[Union[str, bytes]]]


def _dtype_name(dtype: Any) -> str:
    if dtype is None:
        return "float32"
    if isinstance(dtype, str):
        return dtype.removeprefix("torch.")
    if hasattr(dtype, "is_floating_point"):  # a torch.dtype
        return str(dtype).removeprefix("torch.")
    return np.dtype(dtype).name


def _one_text(inputs: Texts) -> bool:
    return isinstance(inputs, (str, bytes))


def _as_list(inputs: Texts) -> list[Union[str, bytes]]:
    if isinstance(inputs, (str, bytes)):
        return [inputs]
    return list(inputs)


class SentenceEncoder(_Front):
    """A sentence-transformers model folder (all-MiniLM-L6-v2) served by a fanin engine.

    ``encode`` takes the arguments of ``SentenceTransformer.encode`` that apply,
    so that code ports by changing the constructor. Many threads may call
    ``encode``/``submit`` at once: their texts share the engine's batches.

    device: "cpu", "cuda", "cuda:N", or several ("cuda:0,cuda:1", "all"),
        one replica each.
    dtype: compute dtype, None (float32), "float16"/"bfloat16" (also numpy
        or torch dtypes).
    max_seq_length: tokens per input including [CLS] and [SEP]; None takes
        the folder's (256 for all-MiniLM-L6-v2). Longer inputs are cut.
    options / engine_options: the engine's batching knobs (EngineOptions),
        e.g. ``workers=4, max_batch_size=128, max_tokens_per_batch=16384``.
        On the CPU, workers defaults to one per core of this process.
    """

    def __init__(
        self,
        model_dir: str,
        device: str = "cpu",
        dtype: Any = None,
        max_seq_length: Optional[int] = None,
        *,
        options: Optional[EngineOptions] = None,
        **engine_options: Any,
    ) -> None:
        devices = _fanin.device_names(device)
        o = make_options(options, engine_options, devices)
        self._core = _fanin.Engine.for_encoder(
            str(model_dir), device, _dtype_name(dtype), max_seq_length or 0, o
        )
        self._encode_one = self._core.encode_one
        info = self._core.info()
        self._dim: int = info["output_shape"][0]
        self._max_seq_length: int = info["max_length"]
        self.device: str = ",".join(info["devices"])

    @property
    def max_seq_length(self) -> int:
        """Tokens per input, [CLS] and [SEP] included; longer inputs are cut."""
        return self._max_seq_length

    def get_embedding_dimension(self) -> int:
        """Floats per embedding (384 for all-MiniLM-L6-v2)."""
        return self._dim

    get_sentence_embedding_dimension = get_embedding_dimension

    def encode(
        self,
        sentences: Texts,
        batch_size: int = 32,
        show_progress_bar: Optional[bool] = None,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        normalize_embeddings: bool = False,
        truncate_dim: Optional[int] = None,
        prompt: Optional[str] = None,
        *,
        priority: int = 0,
        timeout: Optional[float] = None,
    ) -> Any:
        """Embeddings of ``sentences``: float32 ``[n, dim]``, or ``[dim]`` for one string.

        The model's embeddings are L2-normalised already (all-MiniLM-L6-v2 ends
        in a Normalize module); ``normalize_embeddings`` normalises again after
        ``truncate_dim`` cuts them. ``batch_size`` is the number of texts per
        request: the engine batches requests (from every thread) itself.
        ``show_progress_bar`` is accepted and ignored. Blocks with the GIL
        released; Ctrl-C cancels the call's requests.
        """
        if (
            sentences.__class__ is str
            and prompt is None
            and truncate_dim is None
            and not normalize_embeddings
            and not convert_to_tensor
        ):
            # One string as it is (a thread's encode(sentence) loop): the
            # compiled module makes the [dim] array, one GIL release per call.
            return self._encode_one(sentences, batch_size, priority, timeout)
        del show_progress_bar
        one = _one_text(sentences)
        texts = _as_list(sentences)
        if prompt:
            texts = [prompt + (t.decode() if isinstance(t, bytes) else t) for t in texts]
        out = self._core.encode(texts, batch_size, priority, timeout, True)
        out = self._postprocess(out, normalize_embeddings, truncate_dim)
        if one:
            out = out[0]
        if convert_to_tensor:
            import torch

            return torch.from_numpy(out)
        if not convert_to_numpy:
            return list(out) if not one else out
        return out

    def _postprocess(
        self, out: np.ndarray, normalize: bool, truncate_dim: Optional[int]
    ) -> np.ndarray:
        if truncate_dim is not None:
            if not 0 < truncate_dim <= self._dim:
                raise _errors_invalid(f"[encode] truncate_dim must be in 1..{self._dim}, got {truncate_dim}")
            out = out[:, :truncate_dim]
        if normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.maximum(norms, np.float32(1e-12))
        return out

    def tokenize(self, texts: Texts) -> dict[str, np.ndarray]:
        """Token ids as the model runs them, padded to the longest: ``input_ids``,
        ``attention_mask``, ``token_type_ids`` (int64 ``[n, longest]``)."""
        ids, _ = self._core.tokenize(_as_list(texts))
        longest = max((len(x) for x in ids), default=0)
        input_ids = np.zeros((len(ids), longest), dtype=np.int64)
        mask = np.zeros_like(input_ids)
        for i, x in enumerate(ids):
            input_ids[i, : len(x)] = x
            mask[i, : len(x)] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(input_ids),
        }

    def submit(
        self, sentences: Texts, priority: int = 0, timeout: Optional[float] = None
    ) -> concurrent.futures.Future:
        """Queues ``sentences`` and returns at once a Future of their embeddings
        (``[dim]`` for one string, ``[n, dim]`` for a list). Raises QueueFull or
        InvalidArgument at once; cancelling the Future cancels the request."""
        fut = _requests._Future()
        self._core.submit_texts_to(sentences, fut, fut._outcome, fut._token, priority, timeout, True)
        return fut

    async def embed(
        self, sentences: Texts, priority: int = 0, timeout: Optional[float] = None
    ) -> np.ndarray:
        """As ``submit``, for asyncio: ``await enc.embed("hello")``. Cancelling
        the Task cancels the request."""
        texts, wrap = self._request(sentences)
        return await _requests.awaitable(
            lambda token, done: self._core.submit_texts(texts, done, token, priority, timeout, True),
            wrap,
        )

    @staticmethod
    def _request(sentences: Texts) -> tuple[list[Union[str, bytes]], _requests.Wrap]:
        if _one_text(sentences):
            return _as_list(sentences), _first_row
        return _as_list(sentences), _requests._identity

    def __repr__(self) -> str:
        info = self._core.info()
        return (
            f"SentenceEncoder({info['model_name']}, device={self.device!r}, "
            f"dtype={info['dtype']!r}, max_seq_length={self._max_seq_length})"
        )


def _first_row(result: np.ndarray) -> np.ndarray:
    return result[0]


def _errors_invalid(message: str) -> Exception:
    from ._errors import InvalidArgument

    return InvalidArgument(message)
