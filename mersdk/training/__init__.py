"""Training, evaluation and baselines for mersdk (needs the ``train`` extra: scikit-learn, SciPy,
matplotlib). Nothing here is imported by inference: ``mersdk.Recognizer`` never loads this package.

Modules: ``data`` (dataset folders, splits, derived valence/arousal targets), ``cache`` (decoded
log-mels and frozen lyric embeddings), ``noise`` (noise generation and mixing at a given SNR),
``metrics``, ``baselines`` (models that are not ``EmotionModel`` configs), ``train``, ``evaluate``,
``cli`` (the ``mersdk train`` and ``mersdk evaluate`` verbs).
"""
