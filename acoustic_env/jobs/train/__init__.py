"""Training: per-group PCA, an MLP trained with Ray Train and tuned by Ray Tune, baselines, report.

``load_model`` (the artifact reader) imports neither Ray nor scikit-learn, so
a trained model can be used on any machine with numpy, torch, pyarrow and
fsspec; the job itself (``acoustic_env.jobs.train.job.train``) needs Ray.
"""

from acoustic_env.learn.artifact import Model, load_model

__all__ = ["Model", "load_model"]
