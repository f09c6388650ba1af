"""The comparison stage: the explainable AU models and mini-XCEPTION on the same FER2013 faces."""
