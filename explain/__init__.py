"""``make explain``: unlabelled images and videos -> AU table -> saved AU model and CNN -> explanations."""
