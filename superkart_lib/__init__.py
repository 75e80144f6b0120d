"""SuperKart: take a sales model from a notebook to production.

Submodules are imported on demand: the production runtime needs only numpy and
onnxruntime, so nothing here imports scikit-learn or pandas at package import.
"""

__version__ = "0.1.0"
