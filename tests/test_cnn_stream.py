"""The CNN's images streamed by Ray Data (``distributed.images``): what a table that cannot feed it says.

The streamed training itself runs in ``tests/test_cnn_train.py`` (the train job under the split, its process never
decoding an image); the driver's memory while it streams is ``benchmarks/cnn_stream.py``'s to measure.
"""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_env.config import ConfigError
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.distributed import images
from acoustic_env.table import open_table


def test_a_clip_without_its_image_is_one_line(ray_session, tmp_path):
    data = synthetic_features(24, seed=3, logmel_s=1.0)
    table = open_table(write_features(data.table, str(tmp_path / "table"), n_parts=2))
    rows = images.Rows(np.append(np.array(data.ids, dtype=object), "no-such-clip"), np.append(data.true, 0))
    with pytest.raises(ConfigError, match=r"cnn needs every clip's 'logmel' image; 1 clip\(s\)"):
        images.survey(table, rows)
