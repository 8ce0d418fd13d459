"""ImageNet normalisation statistics: the one definition (data pipelines and pretrained models)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
