"""CNN stage: FER2013 pixels -> mini-XCEPTION -> predictions, for comparison with the AU models.

TensorFlow is an optional dependency (``pip install -e '.[cnn]'``); the AU analysis never
imports this package.
"""

import os

# TensorFlow 2.21's oneDNN kernels crashed (SIGSEGV in the first training step) on this
# workplace's AMX-capable CPUs; capping oneDNN at AVX-512 avoids it. Set before TF loads.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
