"""Pose-estimation pretraining: encoders, the multi-camera pose model, losses, training."""
