"""The Ray layer: the only package that imports Ray.

Ray caches its configuration when it is first imported, and a new local instance
announces its default (token authentication) with a warning unless ``RAY_AUTH_MODE``
is set by then. Every module here imports Ray, and this file runs before any of them,
so the mode is stated here: a notebook that calls ``ae.extract`` sees no warning, and a
user's own ``RAY_AUTH_MODE`` (or a Ray imported before ours) still wins.
"""

import os

os.environ.setdefault("RAY_AUTH_MODE", "token")
