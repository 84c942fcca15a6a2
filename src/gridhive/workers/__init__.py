"""Background work: the delivery loop (claim -> deliver -> record) and its metrics."""
