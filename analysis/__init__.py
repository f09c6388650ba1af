"""Analysis stage: AU table -> explainable emotion models (multinomial logit) -> results.

Importing the package is cheap; the heavy modules (statsmodels, scikit-learn) are
imported by the submodules that need them.
"""
