"""Asset tags that let people select by stage, dataset or model (`tag:platform/stage=inference`)."""

STAGE_TAG = "platform/stage"
DATASET_TAG = "platform/dataset"
MODEL_TAG = "platform/model"


def asset_tags(stage: str, dataset: str = "", model: str = "") -> dict[str, str]:
    tags = {STAGE_TAG: stage}
    if dataset:
        tags[DATASET_TAG] = dataset
    if model:
        tags[MODEL_TAG] = model
    return tags
