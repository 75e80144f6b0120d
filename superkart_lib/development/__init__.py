"""The development environment: read and generate data, train and tune, export, write the package."""
