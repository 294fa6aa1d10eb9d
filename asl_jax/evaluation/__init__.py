"""Post-processing (decode + NMS), detection mAP and the evaluator for training and `evaluate`."""
