"""Training settings, defined once: the split, the cross-validation, the search and where it runs.

Plain constants (no imports), so the command line reads its defaults from here even in the
production environment, where the training stack is not installed.
"""

#: Seed of the split, the folds, the search and the models unless one is given.
SEED = 0
#: Share of the rows held out as the test split (the manifest records it).
TEST_SIZE = 0.2
#: Folds of every cross-validation.
CV_FOLDS = 3
#: Candidates of the hyperparameter search (0: keep the defaults).
N_ITER = 20
#: Where the search's fits run: local processes (loky) or a Dask cluster.
BACKENDS = ("loky", "dask")
