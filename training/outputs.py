"""What a run writes under its ``--out`` directory, named once for every module."""

# The classifier directory the Rasa components load (``classifier_path``), under OUT.
MODEL_DIR = "model"
# Where a run keeps its state while it trains (``--resume`` continues from it).
CHECKPOINT_DIR = "checkpoint"
# TEST's predictions of a classifier run.
PREDICTIONS_FILE = "predictions.csv"
