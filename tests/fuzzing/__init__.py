"""Fuzzing: hypothesis strategies for every input slabench reads, and the CLI driven with them (`make fuzz`)."""
