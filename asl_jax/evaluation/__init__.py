"""Post-processing (decode + NMS), detection mAP and the evaluator used in training and `evaluate`."""
