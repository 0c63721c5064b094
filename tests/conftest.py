"""Shared fixtures: one Ray instance and one loopback S3 server per test session.

The S3 endpoint (moto in server mode, as s3fs's own tests use) starts before
Ray so that Ray's workers inherit its endpoint and dummy credentials from the
environment, exactly as they would inherit real ones on a cluster.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "audioset" / "ontology.json").is_file():
        pytest.skip(f"reference data not found at {SHARED} (../shared is absent in a user's clone)")
    return SHARED


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API on 127.0.0.1 (moto server mode); credentials only through the environment."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1")
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def ray_session(s3_endpoint):
    """One local Ray instance for the whole session (2 CPUs, like the CI machine)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield ray
    ray.shutdown()


def tone_clip(path: Path, seconds: float = 1.5, sr: int = 16000, freq: float = 440.0, channels: int = 1,
              subtype: str = "PCM_16", seed: int = 0) -> Path:
    """A small real audio file: a tone plus noise, so every feature has something to measure."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(t.size)
    data = np.repeat(x[:, None], channels, axis=1) if channels > 1 else x
    sf.write(path, data.astype(np.float32), sr, subtype=subtype)
    return path
