"""CNN stage: FER2013 pixels -> mini-XCEPTION -> predictions, for comparison with the AU models.

TensorFlow is an optional dependency (``pip install -e '.[cnn]'``); the AU analysis never
imports this package.
"""

import os

# TensorFlow 2.21's oneDNN kernels crashed on this workplace's AMX-capable CPU: SIGSEGV in
# the first training step, and with oneDNN capped at AVX-512 a heap corruption ("free():
# invalid size") within the first FER2013 epoch. With oneDNN's custom operations off a
# full epoch ran cleanly (147 s). Set before TensorFlow loads; override by exporting them.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
