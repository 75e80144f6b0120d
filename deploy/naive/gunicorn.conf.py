"""gunicorn settings for the naive baseline (``deploy/naive/app.py``).

Sync workers, as in most first deployments: each worker handles one request at a time and
closes the connection after it (no keep-alive). The worker count matches ``superkart serve
--workers`` in the benchmark, so the comparison is process for process.
"""

import os

wsgi_app = "app:app"
chdir = os.path.dirname(os.path.abspath(__file__))  # so `app` imports however gunicorn is started
bind = os.environ.get("NAIVE_BIND", "127.0.0.1:8001")
workers = int(os.environ.get("NAIVE_WORKERS", "2"))
worker_class = "sync"
timeout = 30
accesslog = None  # the fast server runs without an access log too
loglevel = "warning"
