"""The production environment: verify a package, validate inputs, predict, serve and score files.

numpy, onnxruntime and the web server only: never pandas, scikit-learn or any development module.
"""
