"""The AudioSet commands (``acoustic-env audioset ...`` and ``recipe audioset-embeddings``): fetch a segment list,
read the released 1-s embeddings (``embeddings``), the study on them (``frames``), and a rescored segment list
(``rescored``). The corpus itself (lists, ontology, segments) is :mod:`acoustic_env.audioset`."""
