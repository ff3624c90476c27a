"""On-call service: rotations from files plus overrides from the database."""
