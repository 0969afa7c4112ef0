"""One module per pipeline stage; each asset is a thin call into the plain modules."""
