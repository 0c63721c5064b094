"""The pages a person reads: the training report, the audit's review page and the clip assets they share.

Plain functions from results (dicts, tables) to HTML, PNG figures and clip assets (Ogg audio, spectrogram images)
on any filesystem; they start nothing and serve nothing. The jobs write them (``jobs.train``, ``jobs.audit``,
``jobs.search``); the local servers that hand them out are :mod:`acoustic_env.web`.
"""
