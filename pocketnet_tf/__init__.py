"""PocketNet face recognition in TensorFlow / Keras 3.

Boutros et al., "PocketNet: Extreme Lightweight Face Recognition Network using Neural
Architecture Search and Multi-Step Knowledge Distillation", IEEE Access 2022.
"""

__version__ = "0.1.0"
