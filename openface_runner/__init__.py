"""OpenFace stage: image folders or videos -> OpenFace 2.x (Docker or native) -> the AU table.

Images: ``runner`` (``FaceLandmarkImg``); videos and image sequences: ``video``
(``FeatureExtraction`` or ``FaceLandmarkVidMulti``, one row per frame and face).

The table's format is defined by ``analysis.au_table``, the contract both stages share.
"""
