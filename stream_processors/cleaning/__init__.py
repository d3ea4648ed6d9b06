"""The clean stage: reviews.raw.v1 -> reviews.clean.v1 (cleaned text and features)."""
