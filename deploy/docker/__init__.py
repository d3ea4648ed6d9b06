"""Container images of ulasan (serving and trainer) and the helpers their builds run."""
