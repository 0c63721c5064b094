"""Labels that reviewers corrected, kept beside the feature table and read back by train, audit and annotate.

* :mod:`.store`: the append-only label store (``<extract output>/labels/``, local or object
  storage): every given label and every verdict, each with its source, reviewer, time and origin.
* :mod:`.current`: the corrected label list computed from the store's events (the latest reviewed
  labels per clip, else the given ones), and the conflicts between reviewers, never resolved here.
* :mod:`.verdicts`: an audit review's verdicts (``verdicts.json`` or CSV) as store events,
  refused whole when one names a clip the table does not hold.
* :mod:`.label_list`: the corrected list as a CSV file, and what train, audit and annotate read
  from it (or from a store directly).

Plain Python, pyarrow and fsspec: nothing here needs Ray.
"""
