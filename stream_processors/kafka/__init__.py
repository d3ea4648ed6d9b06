"""The workers' Kafka layer: the faust compatibility module, the safe transport, the batch guard."""
