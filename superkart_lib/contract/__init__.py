"""What the development and production environments agree on; the standard library and numpy only."""
