"""Dataset export, the LoRA trainer, evaluation metrics and registry promotion logic.

- ``export``, ``export_layout``, ``dataset``: a milestone's selections as a training set in the object
  store (finetrainers' ``prompt.txt`` + ``videos.txt`` plus winner/loser pairs and a manifest), and
  reading it back, verified against the manifest's checksums.
"""
