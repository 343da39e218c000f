"""Fixtures of the fanin Python tests: the model folder, its reference
embeddings, and one shared CPU encoder."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest

import fanin

SOURCE_DIR = pathlib.Path(
    os.environ.get("FANIN_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2])
)
MODEL_DIR = SOURCE_DIR / "models" / "all-MiniLM-L6-v2"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="session")
def model_dir() -> str:
    if not (MODEL_DIR / "model.safetensors").is_file():
        pytest.skip(f"{MODEL_DIR} is missing (run scripts/fetch_models.sh)")
    return str(MODEL_DIR)


@pytest.fixture(scope="session")
def refs() -> dict:
    """sentence-transformers' embeddings of tests/data/embedding_sentences.txt."""
    with open(SOURCE_DIR / "tests" / "data" / "minilm_refs.json") as f:
        data = json.load(f)
    return {"sentences": data["sentences"], "embeddings": np.asarray(data["embeddings"], np.float32)}


@pytest.fixture(scope="session")
def encoder(model_dir):
    with fanin.SentenceEncoder(model_dir, workers=2) as enc:
        yield enc


@pytest.fixture()
def mlp_engine():
    """A small MLP engine (4 -> 8 -> 2) that checks its inputs."""
    with fanin.Engine(fanin.Model.mlp(dims=[4, 8, 2]), check_inputs=True, max_queue_delay=0) as e:
        yield e
