"""What is built on fitted laws: allocation planning (and how far a plan extrapolates), prediction with bands,
forecasts of partial runs, comparison of forms, calibration of intervals, and the sensitivity of exponents to
counting conventions."""
