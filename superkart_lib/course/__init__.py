"""What the course notebooks and ``superkart run`` call: tables, plots, the run's workspace and report."""
