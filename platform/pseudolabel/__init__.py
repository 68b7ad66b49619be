"""`vda pseudolabel`: a teacher's depth for unlabeled images, as clip shards for training."""
