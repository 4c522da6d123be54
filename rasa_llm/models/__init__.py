"""The model code behind the NLU components: the encoder classifier network and its int8
graph, the classifier directory format (:mod:`~rasa_llm.models.model_files`, the one
owner of save and load), calibration and the out-of-scope score, inference
(:mod:`~rasa_llm.models.inference`) and serving, and apart from them the training loop
and fine-tuning, which serving a model never imports.
"""
