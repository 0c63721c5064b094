"""The Ray layer: the only package that imports Ray.

Ray caches its configuration when it is first imported, and a new local instance
announces its default (token authentication) with a warning unless ``RAY_AUTH_MODE``
is set by then. Every module here imports Ray, and this file runs before any of them,
so the mode is stated here: a notebook that calls ``ae.extract`` sees no warning, and a
user's own ``RAY_AUTH_MODE`` (or a Ray imported before ours) still wins.

Not in a process that ``RAY_ADDRESS`` sends to a cluster, such as every job ``ray job
submit`` starts: it inherits the mode its node's ``ray start`` ran with (unset on a
cluster started without token authentication, where a client in token mode would stop
for want of a token the cluster never gave out). A cluster named with ``--ray-address``
instead gets the stated default, like a local instance: set ``RAY_AUTH_MODE`` to join one
without token authentication.
"""

import os

if not os.environ.get("RAY_ADDRESS"):
    os.environ.setdefault("RAY_AUTH_MODE", "token")
