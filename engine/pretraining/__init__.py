"""Self-supervised pretraining of the FactoFormer branches by masked reconstruction (needs torch).

``masking`` draws which tokens are hidden, ``data`` cuts the pretraining patches,
``objectives`` holds the reconstruction model and its step for the shared training loop,
``run`` pretrains branches into a run folder and ``transfer`` moves the pre-trained
encoders into a FactoFormer for fine-tuning.
"""
