"""CNN stage: FER2013 pixels -> mini-XCEPTION -> predictions, for comparison with the AU models.

TensorFlow is an optional dependency (``pip install -e '.[cnn]'``); the AU analysis never
imports this package.
"""

import os

# TensorFlow 2.21's oneDNN kernels crashed training on this workplace's AMX-capable CPU:
# SIGSEGV in the first step (no cap), heap corruption ("free(): invalid size") within the
# first FER2013 epoch with oneDNN capped at AVX-512. Capped at AVX2, three full epochs ran
# cleanly at 94-105 s each (oneDNN off: 185 s). Set before TensorFlow loads; export
# TF_ENABLE_ONEDNN_OPTS=0 to turn oneDNN off if a crash comes back (--resume continues).
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
