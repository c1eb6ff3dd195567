"""Training and evaluation of genre heads on folder-per-genre music collections."""
