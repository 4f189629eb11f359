"""PyTorch baselines, training, evaluation, benchmark cards and reproduction.

Modules: ``nets`` (ResNet- and MobileNet-style classifiers, a CenterNet-style detector, NMS),
``data`` (examples from the dataset model, letterbox, statistics, augmentation, tiling,
class balance), ``train`` (seeded runs, cross-validation), ``metrics`` (scikit-learn-equal
classification metrics, pycocotools detection metrics, bootstrap intervals), ``baseline`` (the
``baseline`` command's library function and output folder), ``card`` (benchmark card JSON,
Markdown, confusion plot), ``reproduce`` and ``cli``. Torch is the ``models`` extra.

Out-of-sample predictions (``baseline --cv K`` → ``OUT/pred_probs.csv``), the input of the
label-issue audit: CSV with a header row, one row per labelled image, columns
``image_id, file_name, label, label_name, fold, prob_<category id>...`` — ``label`` is the given
category id, ``fold`` the fold that held the image out, and the ``prob_`` columns the softmax
probabilities in ascending category-id order (each row sums to 1), written with full float
precision. ``OUT/predictions.csv`` holds the evaluation split's predictions in the same layout
(``predicted`` instead of ``label_name, fold``) for classification, or one row per detection
(``image_id, file_name, category_id, score, x, y, w, h`` in source pixels) for detection.
"""
