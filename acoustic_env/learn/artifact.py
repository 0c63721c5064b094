"""The model artifact: save it from the train job, load it anywhere with one call.

A directory (local or object storage) holding

- ``model.json``: the task (kind, classes and its ontology definition), the
  feature groups in input order with their widths and weights provenance
  (so that prediction reads the same columns, computed the same way), the network's
  architecture and hyper-parameters, the evaluation metrics, the job config
  and the package versions;
- ``weights.pt``: the network's ``state_dict`` (loaded with ``weights_only=True``);
- ``preprocessing.npz``: per group, the standardisation, PCA components and
  output scaling as plain arrays (loaded with ``allow_pickle=False``).

Nothing is pickled, so loading an artifact never runs code from it, and
loading needs only numpy, torch, pyarrow and fsspec: no Ray, no scikit-learn.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, Collection, Sequence

import numpy as np
import pyarrow as pa
import torch

from acoustic_env.config import ConfigError
from acoustic_env.learn.mlp import MLP, predict_proba
from acoustic_env.learn.transform import (
    GroupTransform,
    from_arrays,
    to_arrays,
    transform_all,
)
from acoustic_env.storage import filesystem, join
from acoustic_env.table import (
    RANDOM,
    FeatureSet,
    GroupInfo,
    read_features,
    vectors_to_numpy,
)

FORMAT_VERSION = 1
MODEL_JSON, WEIGHTS, PREPROCESSING = "model.json", "weights.pt", "preprocessing.npz"


def _write_bytes(uri: str, data: bytes) -> None:
    fs, path = filesystem(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, data)


def _read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    return fs.cat_file(path)


def save_model(uri: str, state_dict: dict[str, torch.Tensor], transforms: list[GroupTransform],
               description: dict[str, Any], feature_groups: Sequence[GroupInfo]) -> None:
    """Write the three files; ``description`` becomes model.json (with the groups' order, widths and weights added)."""
    if [t.group for t in transforms] != [g.name for g in feature_groups]:
        raise ValueError("save_model: transforms and feature_groups must name the same groups in the same order")
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buf)
    _write_bytes(join(uri, WEIGHTS), buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, **to_arrays(transforms))
    _write_bytes(join(uri, PREPROCESSING), buf.getvalue())
    meta = {"format_version": FORMAT_VERSION, **description,
            "groups": [{"name": t.group, "dim": g.dim, "components": t.n_components, "weights": g.weights}
                       for t, g in zip(transforms, feature_groups)]}
    _write_bytes(join(uri, MODEL_JSON), json.dumps(meta, indent=2, sort_keys=True, default=str).encode())


def _column_matrix(values: Any, dim: int) -> np.ndarray:
    """One group's values (Arrow list column, pandas column of arrays, or a matrix) as float32 [n, dim], NaN if null."""
    if isinstance(values, (pa.ChunkedArray, pa.Array)):
        if pa.types.is_fixed_size_list(values.type):
            return vectors_to_numpy(values, dim)
        values = values.to_pylist()
    if isinstance(values, np.ndarray) and values.dtype != object:
        return values.astype(np.float32).reshape(len(values), dim)
    rows = [np.full(dim, np.nan, np.float32) if v is None else np.asarray(v, np.float32) for v in list(values)]
    return np.stack(rows).reshape(len(rows), dim) if rows else np.empty((0, dim), np.float32)


@dataclass(frozen=True)
class Model:
    """A trained classifier: feature rows in, class probabilities out."""

    meta: dict[str, Any]
    net: MLP
    transforms: list[GroupTransform]

    @property
    def kind(self) -> str:
        return self.meta["task"]["kind"]

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["task"]["class_names"])

    @property
    def groups(self) -> list[str]:
        return [g["name"] for g in self.meta["groups"]]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta.get("metrics", {})

    def read_features(self, source: str, clip_ids: Collection[str] | None = None) -> FeatureSet:
        """The model's feature groups from a feature table, by the rules it was trained under.

        Exactly its columns; a column recorded as computed with other weights, or
        of another width, stops with one line rather than scoring garbage.
        """
        recorded = {g["name"]: g for g in self.meta["groups"]}
        data = read_features(source, feature_groups=self.groups, clip_ids=clip_ids,
                             include_random_weights=any(g.get("weights") == RANDOM for g in recorded.values()))
        for info in data.feature_groups:
            want = recorded[info.name]
            if info.dim != want["dim"] or want.get("weights", info.weights) != info.weights:
                raise ConfigError(f"features: column {info.name} of {source} has {info.dim} values, weights "
                                  f"{info.weights}; the model was trained on {want['dim']}, "
                                  f"weights {want.get('weights')}")
        return data

    def matrices(self, data: Any) -> dict[str, np.ndarray]:
        """The model's groups from a FeatureSet, a table, a DataFrame, a mapping of arrays or a feature-table URI."""
        if isinstance(data, str):
            data = self.read_features(data)
        if isinstance(data, FeatureSet):
            return data.rows(np.arange(len(data))) if data.X is None else data.X
        names = data.column_names if isinstance(data, pa.Table) else list(data.keys())
        missing = [g for g in self.groups if g not in names]
        if missing:
            raise KeyError(f"the input lacks the feature groups this model uses: {', '.join(missing)}")
        dims = {g["name"]: g["dim"] for g in self.meta["groups"]}
        return {g: _column_matrix(data[g], dims[g]) for g in self.groups}

    def predict_proba(self, data: Any) -> np.ndarray:
        """[n, classes] probabilities, one row per input row (NaN where a feature vector is missing)."""
        x = transform_all(self.transforms, self.matrices(data))
        ok = np.isfinite(x).all(axis=1)
        out = np.full((len(x), len(self.class_names)), np.nan)
        if ok.any():
            out[ok] = predict_proba(self.net, x[ok], self.kind, len(self.class_names))
        return out

    def predict_table(self, data: Any) -> pa.Table:
        """``clip_id`` (when the input has it), the prediction and ``prob_<class>`` per row, as an Arrow table."""
        if isinstance(data, str):
            data = self.read_features(data)
        p = self.predict_proba(data)
        cols: dict[str, Any] = {}
        if isinstance(data, FeatureSet):
            cols["clip_id"] = data.clips["clip_id"]
        elif "clip_id" in (data.column_names if isinstance(data, pa.Table) else list(data.keys())):
            cols["clip_id"] = pa.array(list(data["clip_id"]), pa.string())
        pred = self._decide(p)
        cols["predicted"] = (pa.array([[c for c, on in zip(self.class_names, row) if on] for row in pred])
                             if self.kind == "multi_label" else pa.array(list(pred), pa.string()))
        cols.update({f"prob_{c}": pa.array(p[:, j]) for j, c in enumerate(self.class_names)})
        return pa.table(cols)

    def predict(self, data: Any, threshold: float = 0.5) -> np.ndarray:
        """Class names (single-label; None where features are missing) or a 0/1 matrix (multi-label)."""
        return self._decide(self.predict_proba(data), threshold)

    def _decide(self, p: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        if self.kind == "multi_label":
            return (p >= threshold).astype(np.int8)
        names = np.array(self.class_names + [None], dtype=object)
        idx = np.where(np.isfinite(p).all(axis=1), np.nan_to_num(p).argmax(axis=1), len(self.class_names))
        return names[idx]

    def feature_plan(self) -> tuple[dict[str, str], list[Any], dict[str, int]]:
        """What scoring raw audio computes: (embedder -> weights id, tagger specs, column -> width).

        The columns are the model's groups plus the first tagger's class scores (for the
        tags shown beside the prediction); ``predict_files`` and the live service share it.
        """
        from acoustic_env.config import EMBEDDERS
        from acoustic_env.embedders.registry import get

        embedders = {g["name"]: g.get("weights") or "random" for g in self.meta["groups"] if g["name"] in EMBEDDERS}
        taggers = [get(e) for e in embedders if get(e).scores_column]
        columns = {g["name"]: g["dim"] for g in self.meta["groups"]}
        columns.update({t.scores_column: len(t.score_names or ()) for t in taggers})
        return embedders, taggers, columns

    def predict_files(self, files: Sequence[str | dict[str, Any]], *, decode: Any = None, features: Any = None,
                      weights_cache: str | None = None, device: str = "cpu", top_tags: int = 3) -> pa.Table:
        """Label audio files in this process (no Ray, no feature table): one row per file.

        Decodes and computes the model's feature groups with the extract job's own
        functions (:mod:`acoustic_env.audio.featurize`), so the probabilities equal those
        of the same clips extracted and read back. ``decode``/``features``: the
        DecodeParams/FeatureParams the training table was extracted with (default: the
        defaults; ``acoustic_env.jobs.predict`` reads them from the table's run record).
        A file may also be a mapping with ``uri`` and optionally ``clip_id``,
        ``start_s``, ``end_s``. Columns: ``clip_id``, ``uri``, ``predicted``,
        ``prob_<class>``, ``error`` (why a file could not be scored), and ``tags`` (the
        top AudioSet classes by the tagger's scores) when the model uses a tagging
        embedder. Meant for a handful of files: each is decoded and embedded in turn.
        """
        from acoustic_env.audio.featurize import clip_rows, featurize
        from acoustic_env.config import DecodeParams, FeatureParams

        rows = clip_rows(files)
        embedders, taggers, columns = self.feature_plan()
        found = featurize(rows, columns, decode=decode or DecodeParams(), features=features or FeatureParams(),
                          embedders=embedders, weights_cache=weights_cache, device=device)
        table = self.predict_table({**{g: found.vectors[g] for g in self.groups}, "clip_id": found.clip_ids})
        table = table.add_column(1, "uri", pa.array(found.uris, pa.string()))
        table = table.append_column("error", pa.array(found.errors, pa.string()))
        if taggers:
            table = table.append_column("tags", pa.array(
                top_classes(found.vectors[taggers[0].scores_column], taggers[0].score_names or (), top_tags),
                pa.list_(pa.string())))
        return table


def top_classes(scores: np.ndarray, names: Sequence[str], k: int = 3) -> list[list[str] | None]:
    """Per row, the ``k`` highest-scoring class names as ``"name 0.87"`` (None for a row of NaN)."""
    return [None if top is None else [f"{name} {score:.2f}" for name, score in top]
            for top in top_scores(scores, names, k)]


def top_scores(scores: np.ndarray, names: Sequence[str], k: int = 3) -> list[list[tuple[str, float]] | None]:
    """Per row, the ``k`` highest (class name, score) pairs, best first (None for a row of NaN)."""
    out: list[list[tuple[str, float]] | None] = []
    for row in np.asarray(scores, dtype=np.float64):
        if not np.isfinite(row).all():
            out.append(None)
            continue
        top = np.argsort(-row, kind="stable")[:k]
        out.append([(names[j], float(row[j])) for j in top])
    return out


def load_model(uri: str) -> Model:
    """Load a model artifact written by the train job (local path or fsspec URL)."""
    meta = json.loads(_read_bytes(join(uri, MODEL_JSON)))
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{uri}: model format {meta.get('format_version')} is not {FORMAT_VERSION}")
    with np.load(io.BytesIO(_read_bytes(join(uri, PREPROCESSING))), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    net = MLP(**meta["architecture"])
    net.load_state_dict(torch.load(io.BytesIO(_read_bytes(join(uri, WEIGHTS))), weights_only=True, map_location="cpu"))
    net.eval()
    return Model(meta=meta, net=net, transforms=from_arrays([g["name"] for g in meta["groups"]], arrays))
