"""SuperKart: take a sales model from a notebook to production.

The subpackages are the architecture (``docs/architecture.md``): ``contract`` (what both
environments share: schema, limits, errors, manifest, integrity, versions, formats, files),
``production`` (numpy, onnxruntime and the web server: runtime, validation, the HTTP app,
batch scoring), ``development`` (the training stack: data, features, models, training, export,
writing the package), ``course`` (what the notebooks call) and ``compat`` (other libraries'
private APIs, guarded). Nothing is imported here: the production install has no scikit-learn.
"""

__version__ = "0.1.0"
