"""The Law framework: the estimator contract and registry (base), the optimiser (Huber loss, batched L-BFGS,
bootstrap), variable projection, columns and store readers (data), transforms, fit_law and the fit's text."""
