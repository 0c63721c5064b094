"""What runs BirdNET's converted copy (:mod:`.convert`): ONNX Runtime on the CPU, a CUDA card through ONNX Runtime's
CUDA provider or torch.

Each runtime is a callable windows [n, 144000] (float32, 48 kHz) → (embeddings [n, 1024], logits [n, 6522]), as the
TF Lite reference :class:`~.tflite.Runtime` is, so :class:`~.model.BirdNETEmbedder` takes any of them.
:func:`runtime` picks one for the embedder's device:

- the CPU: ONNX Runtime, which embeds a window in about half the CPU time TF Lite with its XNNPACK delegate takes
  (``benchmarks/birdnet_runtimes.py``; benchmarks/RESULTS.md);
- a CUDA device: ONNX Runtime's CUDA provider where the installed onnxruntime has one (``onnxruntime-gpu`` in
  place of ``onnxruntime``), else torch, the converted graph made a torch module by ``onnx2torch`` (a CUDA build of
  torch comes with the torchvision it imports); with neither, ONNX Runtime on the host, said in a warning.
"""

from __future__ import annotations

import importlib
import logging

import numpy as np
import torch

log = logging.getLogger(__name__)

#: What to install for BirdNET on a CUDA card, beside the birdnet extra.
ON_THE_CARD = "pip install onnx2torch==1.5.15 (or onnxruntime-gpu in place of onnxruntime)"


class OnnxRuntime:
    """The converted copy in an ONNX Runtime session: on the CPU with ``threads`` threads, or on ``cuda_device``."""

    def __init__(self, model: bytes, threads: int, cuda_device: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        # idle threads wait without spinning: an extract actor's CPUs are its own share of the node, not more
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # its warnings (a node placed on the CPU) are details, not the console's
        providers: list = ["CPUExecutionProvider"]
        if cuda_device is not None:
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": cuda_device}))
        self.session = ort.InferenceSession(model, options, providers=providers)
        self.input = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        embedding, logits = self.session.run(None, {self.input: np.ascontiguousarray(batch, dtype=np.float32)})
        return embedding, logits


class TorchRuntime:
    """The converted copy as a torch module (``onnx2torch``) on ``device``."""

    def __init__(self, model: bytes, device: torch.device) -> None:
        import onnx
        from onnx2torch import convert

        self.device = device
        self.network = convert(onnx.load_from_string(model)).to(device).eval()

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            windows = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            embedding, logits = self.network(windows)
        return embedding.float().cpu().numpy(), logits.float().cpu().numpy()


def cuda_provider() -> bool:
    """Whether the installed onnxruntime runs on CUDA (``onnxruntime-gpu``)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def runtime(model: bytes, device: torch.device, threads: int) -> OnnxRuntime | TorchRuntime:
    """The runtime of the converted copy for ``device`` (see the module's docstring)."""
    if device.type != "cuda":
        return OnnxRuntime(model, threads)
    index = device.index if device.index is not None else torch.cuda.current_device()
    if cuda_provider():
        return OnnxRuntime(model, threads, cuda_device=index)
    try:
        importlib.import_module("onnx2torch")
    except (ImportError, RuntimeError) as exc:  # absent, or its torchvision built for another torch (a CPU one)
        log.warning("birdnet runs on the host's CPU (ONNX Runtime), not on %s: onnx2torch cannot be imported (%s: "
                    "%s); %s", device, type(exc).__name__, exc, ON_THE_CARD)
        return OnnxRuntime(model, threads)
    return TorchRuntime(model, torch.device("cuda", index))
