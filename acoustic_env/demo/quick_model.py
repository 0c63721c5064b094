"""A small model trained in this process, without Ray: for tests, benchmarks and offline examples.

The train job tunes, cross-validates and reports on Ray; checking what happens
*after* training (predict, annotate, the artifact) needs only some saved model of the
right shape, trained on a real feature table. This fits the same per-group PCA and MLP
(``learn/``) briefly and saves the same artifact, recording the table it came from so
that ``predict`` finds the table's extraction parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

from acoustic_env.vocabulary.tasks import load_task
from acoustic_env.learn.artifact import save_model, table_description
from acoustic_env.learn.fit import Schedule
from acoustic_env.learn.mlp import architecture
from acoustic_env.learn.portable import from_network
from acoustic_env.learn.preprocess import fit_group
from acoustic_env.learn.transform import transform_all
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.table import read_features

PARAMS = {"depth": 1, "width": 16, "lr": 1e-2, "activation": "tanh", "dropout": 0.0, "weight_decay": 0.0,
          "batch_size": 8}


def quick_model(features: str, output: str, *, task: str = "urban_natural", feature_groups: Sequence[str] = (),
                include_random_weights: bool = False, components: int = 4, rounds: int = 3, seed: int = 0) -> str:
    """Fit on every clip of ``features`` with a target (no held-out split: not for metrics); returns ``output``."""
    t = load_task(task)
    table = read_features(features, task=t, feature_groups=feature_groups,
                          include_random_weights=include_random_weights)
    transforms = [fit_group(table.X[g.name], components, g.name, seed) for g in table.feature_groups]
    x = transform_all(transforms, table.X)
    network = make_estimator("mlp", t.kind, t.n_classes, seed, network=PARAMS, max_rounds=rounds,
                             patience=Schedule.patience).network()
    network.train({"x_train": x, "y_train": table.y, "x_val": x, "y_val": table.y}, t.kind, t.n_classes, 10)
    net = network.model_
    arch = architecture(x.shape[1], t.kind, t.n_classes, PARAMS)
    save_model(output, from_network(net, arch, t.kind, t.n_classes), transforms,
               {"task": {"name": t.name, "kind": t.kind, "class_names": list(t.class_names),
                         "definition": t.definition}, "run_id": f"quick-{seed}",
                **table_description(features)},
               table.feature_groups)
    return output
