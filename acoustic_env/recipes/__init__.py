"""Recipes: a public collection's published layout and metadata → a clip list that extract, train and audit accept.

One module per collection, as Lhotse has one per corpus; each has a function
``prepare_<corpus>(root, out) -> path of the manifest`` and its docstring names
where the collection is published and under which licence. The manifests are
generic CSV clip lists (``acoustic_env.audio.manifest``): ``clip_id``, ``uri``,
``labels``, ``group`` (the source recording, so that splits never separate its
clips), ``fold`` (the published folds or splits, for ``train --folds-column fold``)
and the collection's own columns, which extract carries into the feature table.

``acoustic-env recipe NAME ROOT OUT`` runs one: each is a job of the catalogue (``jobs/catalog.py``), its config
one class of ``config/recipes.py`` and its module's ``run`` and ``plan`` (``--dry-run``) what the command calls, so a
new collection is a module, a config and one line of the catalogue, with no branch on its name.
"""

from __future__ import annotations
