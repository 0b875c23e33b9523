"""What is built on fitted laws: allocation planning, prediction with bands, comparison of forms, calibration of
intervals, and the sensitivity of exponents to counting conventions."""
