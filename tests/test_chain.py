"""The extract's stage chain, declared once (``audio/chain.py``) and run in this process (``jobs/in_process.py``).

No Ray is started here: ``tests/test_pipeline.py`` holds the in-process table equal to the Ray pipeline's, and
``tests/test_device_stage.py`` runs the device chain on Ray; the pools a GPU or another accelerator gets are
checked here, on the plans such a cluster would give.
"""

from __future__ import annotations

import inspect

import pyarrow as pa
import pytest

from acoustic_env.audio.chain import Stage, chain_schema, extract_chain, rebatched
from acoustic_env.audio.stages import (
    CpuFeatureStage,
    DecodeStage,
    DeviceStage,
    EmbedderStage,
    FeatureWriterStage,
    PartWriter,
)
from acoustic_env.config import ExtractConfig, from_dict
from acoustic_env.embedders.registry import get
from acoustic_env.jobs.in_process import run_chain

TARGET = {"output": "out", "run_id": "r1", "meta": {}}


def config(**kw) -> ExtractConfig:
    return from_dict(ExtractConfig, {"manifest": "m.csv", "output": "out", "batch_size": 3, "embed_batch_size": 2,
                                     "write_batch_size": 5, "device_batch_size": 7, **kw})


def shape(chain: tuple[Stage, ...]) -> list[tuple[type, int | None, str]]:
    return [(s.cls, s.batch_size, s.pool) for s in chain]


def test_the_chain_has_one_shape_per_kind_of_run():
    """Without embedders one stage decodes, featurises and writes whole blocks; with them, features → one stage per
    embedder (its own class, so that Ray's logs name it, holding its spec's memory) → writers; on the device stage,
    decode → the device stage (every embedder's memory) → writers. Each at its config's batch size."""
    schema = pa.schema([("clip_id", pa.string()), ("uri", pa.string())])
    plain = extract_chain(config(embedders=[]), schema, TARGET, {}, None)
    assert shape(plain) == [(FeatureWriterStage, None, "cpu")]
    assert plain[0].kwargs == {"cfg": config(embedders=[]), "schema": schema, **TARGET}

    cfg = config(embedders=["vggish", "yamnet"])
    weights = {"vggish": "random", "yamnet": "abc"}
    embedded = extract_chain(cfg, schema, TARGET, weights, "cpu")
    assert shape(embedded)[0] == (CpuFeatureStage, 3, "cpu") and shape(embedded)[-1] == (PartWriter, 5, "write")
    embedders = embedded[1:-1]
    assert [s.cls.__name__ for s in embedders] == ["EmbedVggish", "EmbedYamnet"]
    assert all(issubclass(s.cls, EmbedderStage) and (s.batch_size, s.pool) == (2, "embed") for s in embedders)
    assert [s.memory for s in embedders] == [get("vggish").memory, get("yamnet").memory]
    assert embedders[1].kwargs["weights_id"] == "abc" and embedders[1].kwargs["spec"] is get("yamnet")
    assert embedded[-1].kwargs == TARGET

    device = extract_chain(cfg, schema, TARGET, weights, "cuda", device_stage=True)
    assert shape(device) == [(DecodeStage, 3, "cpu"), (DeviceStage, 7, "device"), (PartWriter, 5, "write")]
    assert device[1].memory == get("vggish").memory + get("yamnet").memory
    assert device[1].kwargs["device"] == "cuda" and device[1].kwargs["specs"] == {n: get(n) for n in cfg.embedders}
    # a network is warmed with a dummy batch when its stage is built only where asked (the Ray pipeline): in one
    # process nothing decodes meanwhile, and the dummy batch would be time added
    assert [s.kwargs["warm"] for s in (*embedders, device[1])] == [False] * 3
    warmed = (*extract_chain(cfg, schema, TARGET, weights, "cpu", warm=True)[1:-1],
              extract_chain(cfg, schema, TARGET, weights, "cuda", device_stage=True, warm=True)[1])
    assert [s.kwargs["warm"] for s in warmed] == [True] * 3


def test_the_separated_audio_travels_only_to_embedder_stages():
    cfg = config(embedders=["yamnet"], embed_signals="raw,fg")
    schema = pa.schema([("clip_id", pa.string()), ("uri", pa.string())])
    assert "audio_fg" in chain_schema(schema, cfg).names
    assert "audio_fg" not in chain_schema(schema, cfg, device_stage=True).names


def table(ids: range) -> pa.Table:
    return pa.table({"i": list(ids)})


@pytest.mark.parametrize("size,expected", [(4, [4, 4, 1]), (2, [2, 2, 2, 2, 1]), (9, [9]), (20, [9]),
                                           (None, [3, 4, 2])])
def test_rebatched_cuts_batches_in_order(size, expected):
    batches = list(rebatched([table(range(0, 3)), table(range(3, 7)), table(range(7, 9))], size))
    assert [b.num_rows for b in batches] == expected
    assert pa.concat_tables(batches)["i"].to_pylist() == list(range(9))


class Recorder:
    """A stage that notes the rows of each batch it gets, and of its close (none), and passes the batch on."""

    calls: list[tuple[str, list[int]]] = []

    def __init__(self, name: str):
        self.name = name

    def __call__(self, batch: pa.Table) -> pa.Table:
        Recorder.calls.append((self.name, batch["i"].to_pylist()))
        return batch

    def close(self) -> None:
        Recorder.calls.append((self.name, []))


class Summaries(Recorder):
    """A last stage that yields one summary per two rows, as a stage writing its own parts does."""

    def __call__(self, batch: pa.Table):
        super().__call__(batch)
        for start in range(0, batch.num_rows, 2):
            yield pa.table({"n": [batch.slice(start, 2).num_rows]})


def test_the_in_process_run_calls_each_stage_in_order_at_its_batch_size_and_closes_it():
    Recorder.calls = []
    chain = (Stage(Recorder, {"name": "a"}, 4, "cpu"), Stage(Recorder, {"name": "b"}, 3, "embed"),
             Stage(Summaries, {"name": "w"}, None, "write"))
    out = list(run_chain(chain, [table(range(0, 3)), table(range(3, 10))]))
    assert sum(t["n"][0].as_py() for t in out) == 10
    assert [rows for name, rows in Recorder.calls if name == "a" and rows] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [rows for name, rows in Recorder.calls if name == "b" and rows] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert [len(rows) for name, rows in Recorder.calls if name == "w" and rows] == [3, 3, 3, 1]
    assert Recorder.calls[-3:] == [("a", []), ("b", []), ("w", [])]


def test_each_pool_holds_the_plans_share_of_the_cluster():
    """``distributed/pipeline.py`` maps a stage's pool onto what its actors hold: the feature actors no more than
    the blocks, the embedders a share of an accelerator (not CUDA) asked for by name, the device stage a whole
    GPU per actor, the writers a quarter CPU."""
    from acoustic_env.distributed.pipeline import _pool, plan_extract_resources

    gpu = plan_extract_resources({"CPU": 8.0, "GPU": 1.0}, n_embedders=2, device="cpu")  # CPU pipeline
    assert _pool("cpu", gpu, n_blocks=3)["compute"].min_size == 3  # no actor without a block
    accel = plan_extract_resources({"CPU": 8.0, "accel": 2.0}, n_embedders=2, accelerator="accel")
    embed = _pool("embed", accel, n_blocks=10)
    assert (embed["num_cpus"], embed["num_gpus"], embed["resources"]) == (0.25, None, {"accel": 0.5})
    assert embed["compute"].max_size == 2
    device = plan_extract_resources({"CPU": 16.0, "GPU": 2.0}, n_embedders=1)
    on_card = _pool("device", device, n_blocks=10)
    assert (on_card["num_cpus"], on_card["num_gpus"], on_card["compute"].min_size) == (1.0, 1.0, 2)
    writers = _pool("write", device, n_blocks=10)
    assert writers["num_cpus"] == 0.25 and writers["compute"].max_size == device.write_slots


@pytest.mark.parametrize("kind", ["plain", "embedders", "device"])
def test_every_stage_can_be_built_from_its_declaration(kind):
    """An executor builds each stage as ``cls(**kwargs)``: every declared argument is one the stage takes, and every
    argument it needs is declared (bound, not called: building an embedder stage loads its network)."""
    schema = pa.schema([("clip_id", pa.string()), ("uri", pa.string())])
    cfg = config(embedders=[] if kind == "plain" else ["vggish", "yamnet"])
    weights = {"vggish": "random", "yamnet": "abc"}
    chain = extract_chain(cfg, schema, TARGET, weights, None if kind == "plain" else "cpu",
                          device_stage=kind == "device")
    for stage in chain:
        inspect.signature(stage.cls).bind(**stage.kwargs)


def test_the_log_mel_images_have_their_columns_in_the_chains_schema():
    manifest = pa.schema([("clip_id", pa.string()), ("uri", pa.string())])
    with_images = chain_schema(manifest, config(embedders=[], features={"logmel": True}))
    assert "logmel" in with_images.names and "logmel" not in chain_schema(manifest, config(embedders=[])).names


def test_a_full_batch_goes_on_as_soon_as_it_is_there():
    """The next stage gets a batch of ``size`` rows as soon as the rows are in, not once more rows arrive: a stage
    downstream would otherwise wait a batch behind, and in this process hold one more."""
    pulled = []

    def batches():
        for i in range(3):
            pulled.append(i)
            yield pa.table({"x": list(range(4 * i, 4 * i + 4))})

    out = rebatched(batches(), 4)
    first = next(out)
    assert first.num_rows == 4 and pulled == [0]
