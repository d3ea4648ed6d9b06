"""Events, topic names and the codec: the contracts between every part of ulasan."""

from schemas import topics
from schemas.codec import CodecError, decode, encode

__all__ = ["CodecError", "decode", "encode", "topics"]
