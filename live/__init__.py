"""The live mode (``make serve``): a local web app that explains a webcam, a photo or a video face by
face through the AU model, on top of the other stages' public APIs (``live.app`` says how).

Needs the ``live`` and ``cnn`` extras (FastAPI, uvicorn, TensorFlow).
"""
