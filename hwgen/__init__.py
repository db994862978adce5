"""hwgen: hardware/model co-design for quantized, pattern-sparse CNNs.

The pipeline, one module (or subpackage) per stage:

    ingest -> ir -> sparsity / quantize / reference -> analysis -> gateware/generate -> simulate
"""

__version__ = "0.1.0"
