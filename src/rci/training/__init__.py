"""Training: the RCI corpus generator, stage 1 supervised training, stage 2 distillation, evaluation."""
