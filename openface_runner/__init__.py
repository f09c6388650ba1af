"""OpenFace stage: image folders -> OpenFace 2.x (Docker or native) -> the AU table.

The table's format is defined by ``analysis.au_table``, the contract both stages share.
"""
