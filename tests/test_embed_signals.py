"""Per-signal embeddings (``extract --embed-signals raw,fg,bg``): the flag, the columns' names, the stages, and
the tables they make read by train --grid, a saved model, predict and annotate.

An embedder's raw-signal columns keep the embedder's name (``yamnet``, ``yamnet_scores``); the foreground's and
background's are ``yamnet_fg``, ``yamnet_scores_fg``, ``yamnet_bg``, ... (``table.embedding_column``), so that
``table.source_of`` and ``signal_of`` read embedder and signal back. The Ray tests use YAMNet with seeded random
weights (no download); its random-weight vectors are tiny (about 1e-11), so they are compared relatively.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from acoustic_env.config import AnnotateConfig, ConfigError, ExtractConfig, TrainConfig, from_dict
from acoustic_env.demo.synth import generate_demo
from acoustic_env.table import (
    embedding_column,
    embeddings_needed,
    extract_settings,
    is_scores,
    read_metadata,
    signal_of,
    source_of,
)

SIGNALS3 = ["raw", "fg", "bg"]
YAMNET_COLUMNS = ["yamnet", "yamnet_scores", "yamnet_fg", "yamnet_scores_fg", "yamnet_bg", "yamnet_scores_bg"]


def _config(**kw) -> ExtractConfig:
    return from_dict(ExtractConfig, {"manifest": "m.csv", "output": "o", **kw})


def _rows(table, column: str) -> np.ndarray:
    return np.stack([np.asarray(v, dtype=np.float32) for v in table[column].to_pylist()])


def _close(a: np.ndarray, b: np.ndarray, rtol: float = 1e-4) -> bool:
    """Equal to float tolerance, relative to the vectors' own size (random-weight YAMNet's are about 1e-11)."""
    return bool(np.all(np.abs(a - b) <= rtol * np.abs(b).max(axis=-1, keepdims=True)))


def test_the_field_defaults_to_raw_and_a_bad_value_is_one_line_naming_it():
    assert _config().embed_signals == ("raw",)
    assert _config(embedders=["yamnet"], embed_signals="raw,fg,bg").embed_signals == ("raw", "fg", "bg")
    for value, message in (("raw,loud", r"^embed_signals: must be a non-empty subset of \['raw', 'fg', 'bg'\]"),
                           ([], r"^embed_signals: must be a non-empty subset"),
                           ("fg,fg", r"^embed_signals: must not repeat a name")):
        with pytest.raises(ConfigError, match=message):
            _config(embedders=["yamnet"], embed_signals=value)
    with pytest.raises(ConfigError, match=r"^embed_signals: names the signals the embedders embed: add --embedders, "
                                          r"got 'fg'$"):
        _config(embedders=["none"], embed_signals="fg")
    # auto that finds no embedder: the same line, once the choice is known (before anything starts)
    from acoustic_env.jobs.extract import choose_embedders
    with pytest.raises(ConfigError, match=r"^embed_signals: names the signals the embedders embed, and no embedder "
                                          r"runs \(embedders: none \(\$ACOUSTIC_ENV_EMBEDDERS none\)\)"):
        choose_embedders(_config(embed_signals="fg"), verify=False)
    # train takes the separated signals' columns by name
    assert from_dict(TrainConfig, {"features": "f", "output": "o", "feature_groups": ["yamnet_fg", "panns_bg"]})
    with pytest.raises(ConfigError, match=r"^feature_groups: must be a subset"):
        from_dict(TrainConfig, {"features": "f", "output": "o", "feature_groups": ["yamnet_raw"]})
    # annotate sets the embedders and their signals from the model: neither is one of its extract options
    with pytest.raises(ConfigError, match=r"^extract\.embed_signals: annotate sets it itself"):
        from_dict(AnnotateConfig, {"model": "m", "features": "f", "output": "o", "manifest": "l.csv",
                                   "extract": {"embed_signals": ["fg"]}})


def test_the_flag_and_its_help_come_from_the_field(tmp_path, capsys, monkeypatch):
    from acoustic_env.cli import main

    def help_of(command: str) -> str:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        return " ".join(capsys.readouterr().out.split())

    extract_help = help_of("extract")
    assert "--embed-signals A,B" in extract_help and "<embedder>_fg" in extract_help
    assert "--embed-signals" not in help_of("annotate")  # annotate takes the model's
    monkeypatch.chdir(tmp_path)
    assert main(["extract", "--manifest", "m.csv", "--output", "o", "--embedders", "yamnet",
                 "--embed-signals", "raw,foreground"]) == 2
    assert capsys.readouterr().err.startswith("acoustic-env: error: embed_signals: must be a non-empty subset")


def test_column_names_say_embedder_and_signal():
    assert [embedding_column(c, s) for s in SIGNALS3 for c in ("panns", "panns_scores")] == [
        "panns", "panns_scores", "panns_fg", "panns_scores_fg", "panns_bg", "panns_scores_bg"]
    assert (source_of("panns_fg"), signal_of("panns_fg")) == ("panns", "fg")
    assert (source_of("panns"), signal_of("panns")) == ("panns", None)  # the raw signal's, as before
    assert is_scores("panns_scores") and is_scores("panns_scores_bg") and not is_scores("panns_bg")
    assert embeddings_needed(["indices_raw", "mps_fg", "yamnet_bg", "yamnet", "panns_fg"]) == {
        "yamnet": ("raw", "bg"), "panns": ("fg",)}
    assert extract_settings(["indices_raw", "yamnet_fg"]) == {"embedders": ["yamnet"], "embed_signals": ("fg",)}
    assert extract_settings(["indices_raw"]) == {"embedders": [], "embed_signals": ("raw",)}


def test_extract_columns_and_metadata_per_signal():
    from acoustic_env.audio.rows import pipeline_fields
    from acoustic_env.audio.stages import separated_signals, stages, table_metadata, vector_columns

    cfg = _config(embedders=["yamnet"], embed_signals="bg,raw", features={"signals": ["raw"]})
    assert [c for c in vector_columns(cfg) if c.startswith("yamnet")] == [
        "yamnet", "yamnet_scores", "yamnet_bg", "yamnet_scores_bg"]  # signal by signal, in SIGNALS order
    assert separated_signals(cfg) == ("bg",)  # only bg's audio travels from the feature actors to the embedder
    fields = [f.name for f in pipeline_fields(vector_columns(cfg), stages(cfg), separated_signals(cfg))]
    assert "audio_bg" in fields and "audio_fg" not in fields
    meta = table_metadata(cfg, "r", {"yamnet": "random"})["columns"]
    assert meta["yamnet_bg"] == {**meta["yamnet"], "signal": "bg"} and "signal" not in meta["yamnet"]
    assert meta["yamnet_scores_bg"]["names"] == meta["yamnet_scores"]["names"]
    assert meta["yamnet_bg"]["weights"] == "random" and meta["yamnet_bg"]["source"] == "yamnet"
    assert separated_signals(_config(embedders=["yamnet"])) == ()  # the default hands on no separated audio


def test_the_dry_run_names_the_signals_and_sizes_their_passes(tmp_path, capsys, monkeypatch):
    from acoustic_env.cli import main
    from acoustic_env.audio.sizing import size

    one, three = size(1000, ("panns",), 8, 0, 1), size(1000, ("panns",), 8, 0, 1, embed_signals=3)
    features_only = size(1000, (), 8, 0, 1)["core_hours"]
    assert three["core_hours"] - features_only == pytest.approx(3 * (one["core_hours"] - features_only))
    (tmp_path / "m.csv").write_text("uri,labels\na.wav,\n")
    monkeypatch.chdir(tmp_path)
    assert main(["extract", "--manifest", "m.csv", "--output", "o", "--embedders", "yamnet", "--embed-signals",
                 "raw,fg", "--allow-random-weights", "--weights-cache", str(tmp_path / "empty"), "--dry-run"]) == 0
    assert "embedders yamnet on signals raw,fg" in capsys.readouterr().out


def test_the_in_process_path_embeds_the_signals_a_model_column_names(tmp_path):
    """``batch_outputs`` (predict, serve, windows) embeds fg when a column asks for ``yamnet_fg``, from the same
    separation as the extract's feature stage."""
    from acoustic_env.audio.decode import decode_clip
    from acoustic_env.audio.featurize import batch_outputs, load_nets
    from acoustic_env.config import DecodeParams, FeatureParams
    from acoustic_env.features import separate_signals

    demo = generate_demo(tmp_path / "demo", n_clips=2, seed=8, duration_s=1.5, n_broken=0)
    clips = [decode_clip(str(p), DecodeParams()) for p in sorted(demo.audio_dir.iterdir())]
    nets = load_nets({"yamnet": "random"}, str(tmp_path / "empty"))
    outs = batch_outputs(clips, {"yamnet_fg": 1024}, nets)  # no CPU feature wanted: only the separation runs
    assert set(outs[0]) == {"yamnet_fg", "yamnet_scores_fg"}
    for clip, out in zip(clips, outs):
        fg = separate_signals(clip.audio, 16000, FeatureParams())["fg"]
        alone = nets["yamnet"].embed(fg[None], np.array([fg.size]))
        assert _close(out["yamnet_fg"], alone["yamnet"][0])
        assert _close(out["yamnet_scores_fg"], alone["yamnet_scores"][0])
    both = batch_outputs(clips, {"indices_raw": 60, "yamnet": 1024, "yamnet_bg": 1024}, nets)
    assert {"indices_raw", "yamnet", "yamnet_bg"} <= set(both[0]) and "yamnet_fg" not in both[0]
    assert not _close(both[0]["yamnet"], both[0]["yamnet_bg"], rtol=1e-2)


@pytest.mark.parametrize("device", [None, "cpu"])
def test_the_feature_stage_hands_on_the_separated_signals_an_embedder_embeds(tmp_path, device):
    """``features_batch`` on the numpy path (None) and the torch path (a device: GPU nodes; here torch on the
    CPU): ``audio_fg``/``audio_bg`` hold the separation its features used, null on an error row, and an
    embedder stage fills ``yamnet_fg``... from them."""
    from conftest import tone_clip

    from acoustic_env.audio.manifest import read_manifest
    from acoustic_env.audio.rows import audio_views, row_schema
    from acoustic_env.audio.stages import (
        EmbedderStage,
        decode_batch,
        features_batch,
        separated_signals,
        stages,
        vector_columns,
    )
    from acoustic_env.embedders.registry import get
    from acoustic_env.features import separate_signals

    clips = tmp_path / "clips"
    clips.mkdir()
    tone_clip(clips / "a.wav", seconds=1.0)
    tone_clip(clips / "b.wav", seconds=0.75, freq=880.0, seed=1)
    (clips / "c.wav").write_bytes(b"not audio at all")
    cfg = _config(manifest=str(clips), output=str(tmp_path / "out"), embedders=["yamnet"], embed_signals="fg,bg",
                  allow_random_weights=True, weights_cache=str(tmp_path / "empty"), features={"signals": ["raw"]})
    table = read_manifest(cfg.manifest, cfg.audio_root).table
    schema = row_schema(table.schema, vector_columns(cfg), stages(cfg), separated_signals(cfg))
    decoded = decode_batch(table, cfg, schema)
    done = features_batch(decoded, cfg, schema, device=device)
    assert done["error_type"].to_pylist() == [None, None, "not_audio"]
    assert done["audio"].null_count == 3  # no embedder reads the raw signal: its audio stays behind
    tol = 0 if device is None else 1e-5  # the torch separation: to 1e-6 of the clip's RMS (tests/test_torch_features)
    for i, raw in enumerate(audio_views(decoded["audio"])[:2]):
        expected = separate_signals(raw, 16000, cfg.features)
        for signal in ("fg", "bg"):
            got = audio_views(done[f"audio_{signal}"])[i]
            np.testing.assert_allclose(got, expected[signal], rtol=0, atol=tol, err_msg=f"{signal} of clip {i}")
    assert done["audio_fg"][2].as_py() is None and done["audio_bg"][2].as_py() is None
    stage = EmbedderStage(get("yamnet"), cfg, schema, "cpu", "random")
    embedded = stage(done)
    assert "yamnet" not in embedded.column_names  # raw was not asked for
    fg = audio_views(done["audio_fg"])[0]
    direct = stage.embedder.embed(fg[None], np.array([fg.size]))["yamnet"][0]
    assert _close(np.asarray(embedded["yamnet_fg"][0].values), direct)
    assert embedded["yamnet_bg"][2].as_py() is None and embedded["error_type"].to_pylist() == [None, None, "not_audio"]


# --- on Ray: one extract of raw, fg and bg, read by the grid, a saved model, predict and annotate ---

@pytest.fixture(scope="module")
def signals_world(ray_session, tmp_path_factory):
    """(demo clips with one broken file, their extract with YAMNet of raw, fg and bg, the empty weights cache)."""
    import acoustic_env as ae

    root = tmp_path_factory.mktemp("embed_signals")
    data = generate_demo(root / "data", n_clips=9, duration_s=1.5, n_broken=1, seed=11)
    out, cache = root / "features", root / "no-weights"
    result = ae.extract(str(data.clips_csv), str(out), audio_root=str(data.audio_dir), embedders=["yamnet"],
                        embed_signals=SIGNALS3, allow_random_weights=True, weights_cache=str(cache), progress=False)
    return data, out, cache, result.record


@pytest.mark.slow
def test_extract_writes_each_signals_embeddings_as_the_embedder_gives_them(signals_world):
    from acoustic_env.audio.decode import decode_clip
    from acoustic_env.config import DecodeParams, FeatureParams
    from acoustic_env.embedders.factory import load_embedder
    from acoustic_env.features import separate_signals

    data, out, cache, record = signals_world
    assert record["counts"]["ok"] == data.n_good and record["counts"]["failed"] == data.n_broken
    table = pq.read_table(out / "features")
    assert [c for c in table.column_names if c.startswith("yamnet")] == YAMNET_COLUMNS
    assert not any(c.startswith("audio") for c in table.column_names)  # no signal's audio is stored
    meta = read_metadata(table.schema)["columns"]
    assert {c: (meta[c]["source"], meta[c].get("signal", "raw"), meta[c]["weights"]) for c in YAMNET_COLUMNS} == {
        c: ("yamnet", signal_of(c) or "raw", "random") for c in YAMNET_COLUMNS}
    assert list(record["config"]["embed_signals"]) == SIGNALS3  # the run record says what the run computed
    assert "embed_yamnet" in record["cpu_s"]
    net = load_embedder("yamnet", allow_random_weights=True, cache_dir=str(cache))
    vectors = {c: _rows(table, c) for c in YAMNET_COLUMNS}
    for i, uri in enumerate(table["uri"].to_pylist()):
        clip = decode_clip(uri, DecodeParams()).audio
        signals = {"raw": clip, **separate_signals(clip, 16000, FeatureParams())}
        for signal, audio in signals.items():
            alone = net.embed(audio[None], np.array([audio.size]))
            for output in ("yamnet", "yamnet_scores"):
                assert _close(vectors[embedding_column(output, signal)][i], alone[output][0]), (i, signal, output)
        for signal in ("fg", "bg"):  # the separated signals' embeddings are not the raw signal's
            assert not _close(vectors[f"yamnet_{signal}"][i], vectors["yamnet"][i], rtol=1e-2), (i, signal)
    assert not _close(vectors["yamnet_fg"], vectors["yamnet_bg"], rtol=1e-2)


@pytest.mark.slow
def test_the_grid_finds_the_fg_and_bg_cells_columns(signals_world):
    from acoustic_env.jobs.train.grid import cells, check_columns
    from acoustic_env.table import read_features

    _, out, _, _ = signals_world
    features = read_features(str(out), task="urban_natural", include_random_weights=True)
    assert {"yamnet", "yamnet_fg", "yamnet_bg"} <= set(features.columns)
    by_source = read_features(str(out), task="urban_natural", include_random_weights=True, feature_groups=["yamnet"])
    assert list(by_source.columns) == ["yamnet"]  # the embedder's name is its raw column's, as before
    assert {c for c, why in features.excluded["columns"].items() if "scores" in why} == {
        "yamnet_scores", "yamnet_scores_fg", "yamnet_scores_bg"}  # every signal's tagger scores stay out
    check_columns(cells(("none", "yamnet"), ("raw", "fg", "bg", "all"), ("indices", "mps")), features)


@pytest.mark.slow
def test_a_model_on_yamnet_fg_predicts_from_files_what_it_gives_on_the_table(signals_world, tmp_path):
    """In process (the separation and the embedder run here), through the extract job (its embed_signals taken
    from the model's columns) and from the extracted table: the same probabilities."""
    import acoustic_env as ae
    from acoustic_env.demo.quick_model import quick_model
    from acoustic_env.jobs.predict import predict

    data, out, cache, _ = signals_world
    model = quick_model(str(out), str(tmp_path / "model"), feature_groups=["indices_raw", "yamnet_fg"],
                        include_random_weights=True)
    m = ae.load_model(model)
    assert m.groups == ["indices_raw", "yamnet_fg"] and m.feature_plan()[0] == {"yamnet": "random"}
    expected = {r["clip_id"]: r for r in m.predict_table(str(out)).to_pylist()}
    assert len(expected) == data.n_good
    in_process = predict([str(data.audio_dir)], model, weights_cache=str(cache)).to_pylist()
    via = predict([str(data.audio_dir)], model, weights_cache=str(cache), max_in_process=1,
                  output=str(tmp_path / "work")).to_pylist()
    work = pq.read_table(tmp_path / "work" / "features")
    assert {"yamnet", "yamnet_fg"} <= set(work.column_names) and "yamnet_bg" not in work.column_names
    for rows in (in_process, via):
        scored = [r for r in rows if r["error"] is None]
        assert len(scored) == data.n_good and len(rows) == data.n_good + data.n_broken
        for r in scored:
            e = expected[r["clip_id"]]
            assert r["predicted"] == e["predicted"]
            np.testing.assert_allclose([r["prob_urban"], r["prob_natural"]], [e["prob_urban"], e["prob_natural"]],
                                       atol=1e-6, rtol=0)
            assert r["tags"]  # the tags: the raw signal's scores, whatever signals the model reads


def test_annotate_and_its_dry_run_extract_the_models_signals(tmp_path):
    """The model's columns say which embedders and signals annotate's extract computes (dry run: no Ray)."""
    import json

    from acoustic_env.vocabulary.tasks import load_task
    from acoustic_env.jobs.plan import plan_annotate

    task = load_task("urban_natural")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.json").write_text(json.dumps({"task": {
        "kind": task.kind, "class_names": list(task.class_names), "definition": task.definition}, "groups": [
        {"name": "indices_raw", "dim": 60}, {"name": "yamnet_bg", "dim": 1024, "weights": "random"}]}))
    (tmp_path / "l.csv").write_text(f"uri,labels\n{tmp_path / 'x.wav'},/t/dd00128\n")
    cfg = from_dict(AnnotateConfig, {"model": str(tmp_path / "model"), "features": str(tmp_path / "f"),
                                     "output": str(tmp_path / "o"), "manifest": str(tmp_path / "l.csv"),
                                     "extract": {"allow_random_weights": True, "weights_cache": str(tmp_path / "e")}})
    plan = plan_annotate(cfg)
    assert "embedders yamnet on signals bg" in "\n".join(plan["lines"])
    assert list(plan["extract"]["weights"]) == ["yamnet"]
