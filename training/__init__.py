"""Dataset export, the LoRA trainer, evaluation metrics and registry promotion logic."""
