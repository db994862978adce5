"""Pattern-sparse model definitions, sparsity methods, training, and the shipped checkpoint."""
