"""Recipes: a public collection's published layout and metadata → a clip list that extract, train and audit accept.

One module per collection, as Lhotse has one per corpus; each has a function
``prepare_<corpus>(root, out) -> path of the manifest`` and its docstring names
where the collection is published and under which licence. The manifests are
generic CSV clip lists (``acoustic_env.audio.manifest``): ``clip_id``, ``uri``,
``labels``, ``group`` (the source recording, so that splits never separate its
clips), ``fold`` (the published folds or splits, for ``train --folds-column fold``)
and the collection's own columns, which extract carries into the feature table.

``acoustic-env recipe NAME ROOT OUT`` runs one (``acoustic_env.cli.recipes``).
"""

from __future__ import annotations

#: recipe name → "module:function"; imported only when a recipe runs.
RECIPES = {
    "urbansound8k": "acoustic_env.recipes.urbansound8k:prepare_urbansound8k",
    "esc50": "acoustic_env.recipes.esc50:prepare_esc50",
    "fsd50k": "acoustic_env.recipes.fsd50k:prepare_fsd50k",
    "audioset": "acoustic_env.recipes.audioset:prepare_audioset",
}
