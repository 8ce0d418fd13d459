"""Networks and factories. Classifiers expose `forward_features(x) -> (B, D)` (the penultimate
layer, used by t-SNE and error analysis) and `forward_head(features) -> logits`."""
